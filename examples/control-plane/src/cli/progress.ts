import { formatBytes } from '../../ui/src/format.js';

/** A one-line progress bar for terminals; plain lines when output is not a TTY. */
export function renderProgress(options: {
  label: string;
  percent: number | null;
  bytesDone: number;
  bytesTotal: number | null;
  width?: number;
}): string {
  const width = options.width ?? 30;
  const percent = options.percent ?? (options.bytesTotal ? (options.bytesDone / options.bytesTotal) * 100 : null);
  const filled = percent === null ? 0 : Math.round((Math.min(100, percent) / 100) * width);
  const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
  const amount = `${formatBytes(options.bytesDone)}${options.bytesTotal ? ` / ${formatBytes(options.bytesTotal)}` : ''}`;
  return `${options.label} [${bar}] ${percent === null ? '  ?' : `${percent.toFixed(0).padStart(3)}%`} ${amount}`;
}
