/** An inclusive byte range of a representation. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads a Range header (RFC 9110 §14.1.2) for a representation of `size` bytes: the single range
 * it asks for, clamped to the size; null when there is no header or one this server does not do
 * (multiple ranges, another unit: the whole representation is sent, as the RFC allows);
 * 'unsatisfiable' when the range starts at or past the end (416).
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  const match = /^bytes=(\d*)-(\d*)$/.exec((header ?? '').trim());
  if (!match) return null;
  const [, from, to] = match;
  if (from === '' && to === '') return null;
  if (from === '') {
    // A suffix: the last N bytes. "-0" asks for nothing.
    const length = Number(to);
    return length === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(from);
  const end = to === '' ? size - 1 : Math.min(size - 1, Number(to));
  if (to !== '' && Number(to) < start) return null; // invalid: ignored, per the RFC
  return start < size ? { start, end } : 'unsatisfiable';
}
