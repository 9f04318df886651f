import { rename, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  type CommandRunner,
  ErrorCode,
  hashFile,
  IMAGE_HEADER_BYTES,
  type ImageConverter,
  type ImageImportRequest,
  type ImageImportResult,
  type ImageImportTarget,
  type ImportedDisk,
  isQuantixError,
  isRetryableError,
  LocalCommandRunner,
  QuantixError,
  readFileHead,
} from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';
import { readQemuImgJson } from '../fetch/inspect.js';
import { removeQuietly, syncDirectory, syncFile } from '../fetch/partial.js';
import { type Compression, compressionOfHead, decompressFile } from './compression.js';
import { assertInfoSelfContained, assertSelfContained } from './headers.js';
import { unpackOva } from './ova.js';

/** What qemu-img may read on import, by its own names ('vpc' is VHD). Anything else is refused. */
export const IMPORT_SOURCE_FORMATS = ['raw', 'qcow2', 'vmdk', 'vhdx', 'vpc', 'vdi'] as const;
export type ImportSourceFormat = (typeof IMPORT_SOURCE_FORMATS)[number];
export type ImportTargetFormat = ImageImportTarget;

/** Default cap on what an image may claim to expand to: 4 TiB. */
export const DEFAULT_MAX_VIRTUAL_SIZE_BYTES = 4 * 1024 ** 4;

const EXTENSION_FORMATS: Record<string, ImportSourceFormat> = {
  qcow2: 'qcow2',
  raw: 'raw',
  vmdk: 'vmdk',
  vhdx: 'vhdx',
  vhd: 'vpc',
  vdi: 'vdi',
};
const COMPRESSION_SUFFIX = /\.(xz|gz|gzip|zst|zstd|bz2)$/i;

/** The format a file name claims ('disk.vhd.xz' claims vpc), or null when it claims none ('.img' is either). */
export function claimedFormatOfName(name: string): ImportSourceFormat | null {
  const bare = basename(name).replace(COMPRESSION_SUFFIX, '');
  const dot = bare.lastIndexOf('.');
  return dot > 0 ? (EXTENSION_FORMATS[bare.slice(dot + 1).toLowerCase()] ?? null) : null;
}

/** Whether a file's first 512 bytes are a tar header (an OVA): "ustar" at offset 257. */
export function isTarHead(head: Uint8Array): boolean {
  return head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar';
}

/** Where disk `index` of an OVA goes: the destination itself for the first, `<base>-disk<N>.<ext>` after. */
export function diskDestination(destinationPath: string, index: number): string {
  if (index === 0) return destinationPath;
  const dot = destinationPath.lastIndexOf('.');
  const slash = destinationPath.lastIndexOf('/');
  return dot > slash + 1
    ? `${destinationPath.slice(0, dot)}-disk${index + 1}${destinationPath.slice(dot)}`
    : `${destinationPath}-disk${index + 1}`;
}

export interface ImportImageResult extends ImageImportResult {
  disks: ImportDiskResult[];
}

/** The percentage in the last `(12.34/100%)` of qemu-img convert -p's output, or null. */
export function parseConvertProgress(text: string): number | null {
  const matches = [...text.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
  const last = matches.at(-1)?.[1];
  return last === undefined ? null : Math.min(100, Number(last));
}

export type ImportDiskRequest = ImageImportRequest;

export interface ImportDiskResult extends ImportedDisk {
  format: ImportTargetFormat;
  sourceFormat: ImportSourceFormat;
  compression: Compression | null;
}

export interface QemuImgConverterOptions {
  runner?: CommandRunner;
  qemuImg?: string;
  /** Refuse images claiming a larger virtual size. Default DEFAULT_MAX_VIRTUAL_SIZE_BYTES. */
  maxVirtualSizeBytes?: number;
  /** For qemu-img info/check. Default 60 s. */
  inspectTimeoutMs?: number;
  /** For one conversion or decompression. Default 6 h. */
  convertTimeoutMs?: number;
}

/**
 * Imports a disk image the way a node must: the file is not trusted. Compression is read from
 * its magic bytes and undone streaming; its header is checked for references to other files
 * before qemu-img opens it; the format is what `qemu-img info` probes, not what its name says,
 * and a claim that differs is refused; `qemu-img convert` is then told that format (`-f`, so it
 * never probes again) and writes a temporary file that is renamed into place only once qemu-img
 * reads it back as the target format with the same virtual size. Whatever fails, no temporary
 * file is left behind.
 */
export class QemuImgConverter implements ImageConverter {
  private readonly runner: CommandRunner;
  private readonly qemuImg: string;
  readonly maxVirtualSizeBytes: number;
  private readonly inspectTimeoutMs: number;
  private readonly convertTimeoutMs: number;

  constructor(options: QemuImgConverterOptions = {}) {
    this.runner = options.runner ?? new LocalCommandRunner();
    this.qemuImg = options.qemuImg ?? 'qemu-img';
    this.maxVirtualSizeBytes = options.maxVirtualSizeBytes ?? DEFAULT_MAX_VIRTUAL_SIZE_BYTES;
    this.inspectTimeoutMs = options.inspectTimeoutMs ?? 60_000;
    this.convertTimeoutMs = options.convertTimeoutMs ?? 6 * 3600_000;
  }

  /**
   * Imports a disk image or an OVA (found by its content: a tar archive). An OVA's disks are
   * extracted next to the destination, each converted (the first to `destinationPath`, more to
   * `<base>-disk<N>`), and its OVF facts returned; the extracted files never stay. When a later
   * disk fails, the disks converted before it are removed too.
   */
  async importImage(request: ImportDiskRequest): Promise<ImportImageResult> {
    // One read of the source's head answers every question asked of it: tar, compression, header.
    const head = await readFileHead(request.sourcePath, IMAGE_HEADER_BYTES);
    if (!isTarHead(head)) {
      return { disks: [await this.importDiskWithHead(request, head)], ovf: null };
    }
    const workDir = `${request.destinationPath}.ova.d`;
    const done: ImportDiskResult[] = [];
    try {
      const { facts, disks } = await unpackOva({ path: request.sourcePath, workDir });
      for (const [index, disk] of disks.entries()) {
        done.push(
          await this.importDisk({
            ...request,
            sourcePath: disk.path,
            originalName: disk.fileName,
            destinationPath: diskDestination(request.destinationPath, index),
            // The OVA's own name claims nothing of its disks; each disk's name does.
            claimedFormat: undefined,
            removeSource: true,
          }),
        );
      }
      if (request.removeSource) await rm(request.sourcePath, { force: true });
      return { disks: done, ovf: facts };
    } catch (error) {
      await Promise.all(done.map((disk) => rm(disk.path, { force: true })));
      if (request.removeSource && isQuantixError(error) && !isRetryableError(error)) {
        await rm(request.sourcePath, { force: true });
      }
      throw error;
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  importDisk(request: ImportDiskRequest): Promise<ImportDiskResult> {
    return this.importDiskWithHead(request, null);
  }

  /** importDisk, given the source's first IMAGE_HEADER_BYTES when they were read already (else null). */
  private async importDiskWithHead(request: ImportDiskRequest, sourceHead: Buffer | null): Promise<ImportDiskResult> {
    const target = request.targetFormat ?? 'qcow2';
    const decompressedPath = `${request.destinationPath}.decompressed`;
    const convertingPath = `${request.destinationPath}.converting`;
    let refused = false;
    try {
      let head = sourceHead ?? (await readFileHead(request.sourcePath, IMAGE_HEADER_BYTES));
      const compression = compressionOfHead(head);
      let working = request.sourcePath;
      if (compression) {
        request.onProgress?.({ stage: 'decompressing', percent: null, bytesDone: 0 });
        await decompressFile({
          source: request.sourcePath,
          destination: decompressedPath,
          compression,
          // A disk image's file is at most a little larger than its virtual size (metadata).
          maxBytes: this.maxVirtualSizeBytes + Math.floor(this.maxVirtualSizeBytes / 8) + 1024 * 1024,
          signal: request.signal,
          onBytes: (bytesDone) => request.onProgress?.({ stage: 'decompressing', percent: null, bytesDone }),
        });
        working = decompressedPath;
        head = await readFileHead(working, IMAGE_HEADER_BYTES);
      }
      request.onProgress?.({ stage: 'inspecting', percent: null });
      assertSelfContained(head, request.sourcePath);
      const info = await this.info(working, null, request.signal);
      assertInfoSelfContained(info, working);
      const detected = info.format as ImportSourceFormat;
      const virtualSize = info['virtual-size'] as number;
      const claimed =
        request.claimedFormat === undefined
          ? claimedFormatOfName(request.originalName ?? request.sourcePath)
          : request.claimedFormat;
      if (claimed && claimed !== detected) {
        throw new QuantixError(
          ImagesCloudErrorCode.IMAGE_FORMAT_MISMATCH,
          `${request.originalName ?? request.sourcePath} claims to be ${claimed} but its content is ${detected}`,
          { details: { path: request.sourcePath, claimed, detected, retryable: false } },
        );
      }
      if (virtualSize > this.maxVirtualSizeBytes) {
        throw new QuantixError(
          ImagesCloudErrorCode.IMAGE_TOO_LARGE,
          `${request.originalName ?? request.sourcePath} claims a virtual size of ${virtualSize} bytes; the limit is ${this.maxVirtualSizeBytes}`,
          {
            details: {
              path: request.sourcePath,
              virtualSizeBytes: virtualSize,
              maxVirtualSizeBytes: this.maxVirtualSizeBytes,
              retryable: false,
            },
          },
        );
      }

      request.onProgress?.({ stage: 'converting', percent: 0 });
      let output = '';
      await this.qemu(
        ['convert', '-p', '-f', detected, '-O', target, '--', working, convertingPath],
        this.convertTimeoutMs,
        request.signal,
        (chunk) => {
          output = (output + chunk.toString('latin1')).slice(-256);
          const percent = parseConvertProgress(output);
          if (percent !== null) request.onProgress?.({ stage: 'converting', percent });
        },
      );

      request.onProgress?.({ stage: 'verifying', percent: null });
      const result = await this.info(convertingPath, target, request.signal);
      if (result.format !== target || result['virtual-size'] !== virtualSize) {
        throw new QuantixError(
          ImagesCloudErrorCode.CONVERSION_FAILED,
          `The converted image reads as ${String(result.format)} of ${String(result['virtual-size'])} bytes, expected ${target} of ${virtualSize}`,
          { details: { path: convertingPath, retryable: true } },
        );
      }
      if (target === 'qcow2')
        await this.qemu(['check', '-f', 'qcow2', '--', convertingPath], this.inspectTimeoutMs, request.signal);
      // Hashed before the rename, so that whatever fails leaves nothing at the destination.
      const hash = await hashFile({ path: convertingPath, algorithm: 'sha256', signal: request.signal });
      const { size } = await stat(convertingPath);
      await syncFile(convertingPath);
      await rename(convertingPath, request.destinationPath);
      await syncDirectory(request.destinationPath);
      await removeQuietly(decompressedPath);
      if (request.removeSource) await removeQuietly(request.sourcePath);
      return {
        path: request.destinationPath,
        format: target,
        virtualSizeBytes: virtualSize,
        sizeBytes: size,
        checksum: { algorithm: 'sha256', value: hash.digest('hex') },
        sourceFormat: detected,
        compression,
      };
    } catch (error) {
      refused = isQuantixError(error) && !isRetryableError(error);
      throw error;
    } finally {
      await removeQuietly(decompressedPath, convertingPath);
      if (refused && request.removeSource) await removeQuietly(request.sourcePath);
    }
  }

  /** `qemu-img info` as JSON; with `format` given, qemu-img is told it instead of probing. */
  private async info(path: string, format: string | null, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const stdout = await this.qemu(
      ['info', '--output=json', ...(format ? ['-f', format] : []), '--', path],
      this.inspectTimeoutMs,
      signal,
    );
    const info = readQemuImgJson(stdout, path);
    const detected = info.format;
    if (typeof detected !== 'string' || !(IMPORT_SOURCE_FORMATS as readonly string[]).includes(detected)) {
      throw new QuantixError(
        ImagesCloudErrorCode.IMAGE_INVALID,
        `${path} is ${String(detected)}, which is not an importable disk format (${IMPORT_SOURCE_FORMATS.join(', ')})`,
        { details: { path, detected, retryable: false } },
      );
    }
    if (typeof info['virtual-size'] !== 'number') {
      throw new QuantixError(ImagesCloudErrorCode.IMAGE_INVALID, `qemu-img info gives no virtual size for ${path}`, {
        details: { path, retryable: false },
      });
    }
    return info;
  }

  private async qemu(
    args: string[],
    timeoutMs: number,
    signal?: AbortSignal,
    onStdout?: (chunk: Buffer) => void,
  ): Promise<string> {
    try {
      const result = await this.runner.run({
        argv: [this.qemuImg, ...args],
        timeoutMs,
        maxOutputBytes: 4 * 1024 * 1024,
        signal,
        ...(onStdout ? { onOutput: (stream, chunk) => stream === 'stdout' && onStdout(chunk) } : {}),
      });
      return result.stdout;
    } catch (error) {
      if (signal?.aborted) throw error;
      const command = args[0];
      const stderr = isQuantixError(error) ? String(error.details.stderr ?? '').trim() : '';
      // A file qemu-img cannot open is the file's fault; a convert that failed may be the disk's.
      if (command !== 'info' && /No space left on device|Disk quota exceeded/.test(stderr)) {
        throw new QuantixError(ErrorCode.POOL_NO_SPACE, `No room in the pool to convert the image: ${stderr}`, {
          details: { argv: [this.qemuImg, ...args], retryable: true },
          cause: error,
        });
      }
      const code = command === 'info' ? ImagesCloudErrorCode.IMAGE_INVALID : ImagesCloudErrorCode.CONVERSION_FAILED;
      throw new QuantixError(code, `qemu-img ${command} failed: ${stderr || (error as Error).message}`, {
        details: { argv: [this.qemuImg, ...args], retryable: command !== 'info' },
        cause: error,
      });
    }
  }
}
