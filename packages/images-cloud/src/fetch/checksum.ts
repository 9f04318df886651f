import { type Checksum, type ChecksumAlgorithm, ErrorCode, QuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';

const HEX_LENGTH: Record<ChecksumAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface ChecksumLine {
  fileName: string;
  checksum: Checksum;
}

function algorithmForLength(length: number): ChecksumAlgorithm | null {
  if (length === 64) return 'sha256';
  if (length === 128) return 'sha512';
  return null;
}

function baseName(name: string): string {
  const trimmed = name.startsWith('./') ? name.slice(2) : name;
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

// GNU coreutils: "<hex>  name" (text mode) or "<hex> *name" (binary mode); a leading '\' marks
// a name with escaped characters.
const GNU_LINE = /^\\?([0-9a-fA-F]{64}|[0-9a-fA-F]{128}) [ *](.+)$/;
// BSD / `sha256sum --tag` / Fedora, Rocky and CentOS CHECKSUM files: "SHA256 (name) = <hex>".
const BSD_LINE = /^(SHA256|SHA512|SHA2-256|SHA2-512) ?\((.+)\) ?= ?([0-9a-fA-F]+)$/i;

function unescapeGnu(name: string): string {
  return name.replace(/\\(\\|n|r)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

/**
 * Reads every checksum line of a SHA256SUMS / SHA512SUMS / CHECKSUM file, in GNU format
 * (`hash  name`, `hash *name`) or BSD format (`SHA256 (name) = hash`). Other lines — comments,
 * blank lines, a PGP signature wrapped around the list (Fedora) — are skipped.
 */
export function parseChecksumFile(text: string): ChecksumLine[] {
  const lines: ChecksumLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bsd = BSD_LINE.exec(line);
    if (bsd) {
      const algorithm: ChecksumAlgorithm = bsd[1]?.toUpperCase().endsWith('512') ? 'sha512' : 'sha256';
      const value = (bsd[3] as string).toLowerCase();
      if (value.length !== HEX_LENGTH[algorithm]) continue;
      lines.push({ fileName: bsd[2] as string, checksum: { algorithm, value } });
      continue;
    }
    const gnu = GNU_LINE.exec(line);
    if (gnu) {
      const value = (gnu[1] as string).toLowerCase();
      const algorithm = algorithmForLength(value.length);
      if (!algorithm) continue;
      const name = line.startsWith('\\') ? unescapeGnu(gnu[2] as string) : (gnu[2] as string);
      lines.push({ fileName: name, checksum: { algorithm, value } });
    }
  }
  return lines;
}

/**
 * The checksum a checksum file gives for `fileName` (matched on the last path segment, so
 * `./images/x.qcow2` matches `x.qcow2`). A file holding a single line with no usable name
 * (openSUSE's `x.qcow2.sha256` lists the file under its own name) still has to name the file.
 * CHECKSUM_UNAVAILABLE when no line names the file, or two lines disagree.
 */
export function checksumForFile(options: {
  text: string;
  fileName: string;
  algorithm?: ChecksumAlgorithm | null;
  source?: string;
}): Checksum {
  const where = options.source ?? 'the checksum file';
  const wanted = baseName(options.fileName);
  const lines = parseChecksumFile(options.text).filter(
    (line) =>
      baseName(line.fileName) === wanted && (options.algorithm ? line.checksum.algorithm === options.algorithm : true),
  );
  if (lines.length === 0) {
    throw new QuantixError(
      ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE,
      `${where} has no ${options.algorithm ?? 'sha256/sha512'} line for '${wanted}'`,
      { details: { fileName: wanted, source: options.source ?? null, retryable: false } },
    );
  }
  // Prefer the strongest algorithm listed; the same file listed twice must agree.
  const best = lines.some((l) => l.checksum.algorithm === 'sha512')
    ? lines.filter((l) => l.checksum.algorithm === 'sha512')
    : lines;
  const values = new Set(best.map((l) => l.checksum.value));
  if (values.size > 1) {
    throw new QuantixError(
      ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE,
      `${where} lists '${wanted}' with different checksums`,
      {
        details: { fileName: wanted, source: options.source ?? null, retryable: false },
      },
    );
  }
  return (best[0] as ChecksumLine).checksum;
}

/** A checksum given by a caller, checked for form: INVALID_INPUT when it is not hex of the right length. */
export function assertChecksum(checksum: Checksum): Checksum {
  const value = String(checksum.value).toLowerCase();
  const length = HEX_LENGTH[checksum.algorithm];
  if (length === undefined || !new RegExp(`^[0-9a-f]{${length}}$`).test(value)) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Invalid checksum: ${checksum.algorithm} must be ${length ?? '64 or 128'} hex digits`,
      { details: { checksum } },
    );
  }
  return { algorithm: checksum.algorithm, value };
}
