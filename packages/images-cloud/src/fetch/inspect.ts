import {
  type CommandRunner,
  type FileInspector,
  IMAGE_HEADER_BYTES,
  type ImageFormat,
  isQuantixError,
  LocalCommandRunner,
  QuantixError,
  qemuImgInfoForeignFile,
  readFileHead,
} from '@quantix/core';
import { assertSelfContained } from '../convert/headers.js';
import { ImagesCloudErrorCode } from '../errors.js';

export interface ImageInspection {
  /** The format qemu-img reports, as Quantix names it; null for formats Quantix has no name for. */
  format: ImageFormat | null;
  /** qemu-img's own name of the format ('qcow2', 'raw', 'vpc', …). */
  detectedFormat: string;
  virtualSizeBytes: number;
  actualSizeBytes: number | null;
}

/** Reads what a disk image file is. */
export interface ImageInspector {
  inspect(options: { path: string; signal?: AbortSignal }): Promise<ImageInspection>;
}

const KNOWN_FORMATS: Record<string, ImageFormat> = { qcow2: 'qcow2', raw: 'raw', vmdk: 'vmdk', vhdx: 'vhdx' };

/** The object `qemu-img info --output=json` printed; IMAGE_INVALID when it printed no JSON. */
export function readQemuImgJson(json: string, path: string): Record<string, unknown> {
  try {
    return JSON.parse(json) as Record<string, unknown>;
  } catch (error) {
    throw new QuantixError(ImagesCloudErrorCode.IMAGE_INVALID, `qemu-img info printed no JSON for ${path}`, {
      details: { path, retryable: false },
      cause: error,
    });
  }
}

/** Parses `qemu-img info --output=json` of `path`; IMAGE_INVALID for an image that names other files (core's qemuImgInfoForeignFile). */
export function parseQemuImgInfo(json: string, path: string): ImageInspection {
  const info = readQemuImgJson(json, path);
  const detected = typeof info.format === 'string' ? info.format : '';
  const virtualSize = info['virtual-size'];
  if (detected === '' || typeof virtualSize !== 'number') {
    throw new QuantixError(
      ImagesCloudErrorCode.IMAGE_INVALID,
      `qemu-img info gives no format or virtual size for ${path}`,
      {
        details: { path, retryable: false },
      },
    );
  }
  // A downloaded image that points at another file (a backing file, an external data file, VMDK
  // extents) would read that file on the node when a VM boots from it: a cloud image must stand alone.
  const other = qemuImgInfoForeignFile(info, path);
  if (other) {
    throw new QuantixError(
      ImagesCloudErrorCode.IMAGE_INVALID,
      `${path} ${other.message}; a downloaded image must not depend on other files`,
      { details: { path, reason: other.reason, ...other.details, retryable: false } },
    );
  }
  const actual = info['actual-size'];
  return {
    format: KNOWN_FORMATS[detected] ?? null,
    detectedFormat: detected,
    virtualSizeBytes: virtualSize,
    actualSizeBytes: typeof actual === 'number' ? actual : null,
  };
}

export interface QemuImgInspectorOptions {
  /** Runs qemu-img; default a LocalCommandRunner. */
  runner?: CommandRunner;
  /** Default 'qemu-img' from PATH. */
  qemuImg?: string;
  timeoutMs?: number;
}

/**
 * Reads format and virtual size with `qemu-img info --output=json`. The format is probed (the
 * file is not trusted to be what its name says). qemu-img info does open other files a file
 * names — a VMDK descriptor's extents (one naming /etc/passwd is read), a qcow2's external data
 * file — so a file on this machine is first checked from its header alone (assertSelfContained,
 * IMAGE_UNSAFE) before qemu-img sees it; a file behind another runner is checked from qemu-img's
 * answer only.
 */
export class QemuImgInspector implements ImageInspector {
  private readonly runner: CommandRunner;
  private readonly qemuImg: string;
  private readonly timeoutMs: number;
  /** Whether qemu-img runs here, so the file can be read before it does. */
  private readonly filesAreLocal: boolean;

  constructor(options: QemuImgInspectorOptions = {}) {
    this.runner = options.runner ?? new LocalCommandRunner();
    this.filesAreLocal = options.runner === undefined || options.runner instanceof LocalCommandRunner;
    this.qemuImg = options.qemuImg ?? 'qemu-img';
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  async inspect(options: { path: string; signal?: AbortSignal }): Promise<ImageInspection> {
    try {
      if (this.filesAreLocal) assertSelfContained(await readFileHead(options.path, IMAGE_HEADER_BYTES), options.path);
      const result = await this.runner.run({
        argv: [this.qemuImg, 'info', '--output=json', '--', options.path],
        timeoutMs: this.timeoutMs,
        maxOutputBytes: 1024 * 1024,
        signal: options.signal,
      });
      return parseQemuImgInfo(result.stdout, options.path);
    } catch (error) {
      if (
        isQuantixError(error, ImagesCloudErrorCode.IMAGE_INVALID) ||
        isQuantixError(error, ImagesCloudErrorCode.IMAGE_UNSAFE)
      )
        throw error;
      if (options.signal?.aborted) throw error;
      const message = (error as Error).message;
      const missing = isQuantixError(error) && error.details.errno === 'ENOENT';
      throw new QuantixError(
        ImagesCloudErrorCode.IMAGE_INVALID,
        missing
          ? `Cannot inspect ${options.path}: qemu-img is not installed (Debian: apt-get install qemu-utils)`
          : `qemu-img cannot read ${options.path}: ${message}`,
        { details: { path: options.path, retryable: missing }, cause: error },
      );
    }
  }
}

/**
 * A disk image as a FileInspector (content `images`), for uploads: qemu-img probes the format
 * (never trusting the name), refuses an image that names a backing file, and a file named
 * `.qcow2` must read as qcow2 (a raw `.img`/`.raw` is any bytes, so it reads as raw). Not
 * registered as the plugin's FileInspectorToken: pool scans do not run qemu-img on every file.
 */
export function createDiskImageInspector(inspector: ImageInspector = new QemuImgInspector()): FileInspector {
  return {
    async inspect(options) {
      if (options.content !== 'images') return null;
      const found = await inspector.inspect({
        path: options.path,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (options.relPath.toLowerCase().endsWith('.qcow2') && found.detectedFormat !== 'qcow2') {
        throw new QuantixError(
          ImagesCloudErrorCode.IMAGE_INVALID,
          `${options.relPath} is named .qcow2 but reads as ${found.detectedFormat}`,
          { details: { relPath: options.relPath, detectedFormat: found.detectedFormat, retryable: false } },
        );
      }
      return { format: found.format, labels: { 'images.quantix.io/detected-format': found.detectedFormat } };
    },
  };
}
