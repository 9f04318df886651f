import { formatBytes } from '../../ui/src/format.js';

/** A one-line progress bar: `label [####------]  40% 4.0 MiB / 10 MiB`. */
export function renderProgress(options: {
  label: string;
  percent: number | null;
  bytesDone: number;
  bytesTotal: number | null;
  width?: number;
}): string {
  const width = options.width ?? 30;
  const percent = progressPercent(options);
  const filled = percent === null ? 0 : Math.round((Math.min(100, percent) / 100) * width);
  const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
  const amount = `${formatBytes(options.bytesDone)}${options.bytesTotal ? ` / ${formatBytes(options.bytesTotal)}` : ''}`;
  return `${options.label} [${bar}] ${percent === null ? '  ?' : `${percent.toFixed(0).padStart(3)}%`} ${amount}`;
}

type Progress = Parameters<typeof renderProgress>[0];

const progressPercent = (p: Omit<Progress, 'label'>) =>
  p.percent ?? (p.bytesTotal ? (p.bytesDone / p.bytesTotal) * 100 : null);

/** How often a log gets a line when the total is not known (no tenths to count). */
const UNKNOWN_TOTAL_LINE_MS = 10_000;

/**
 * Progress on `stream` (stderr). On a terminal: one line, rewritten in place. Anywhere else (a
 * log, a pipe, CI): a line each time the progress reaches another tenth or its label changes (a
 * download's stage), every 10 s while the total is unknown, and the last one at `end` — not one
 * per chunk or poll, which made a 13 MiB export 100 lines of a log.
 */
export function progressReporter(stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr, now = Date.now) {
  const tty = stream.isTTY === true;
  let written: { line: string; label: string; tenth: number | null; at: number } | null = null;
  let last: string | null = null;
  return {
    show(progress: Progress): void {
      const line = renderProgress(progress);
      if (line === last) return;
      last = line;
      if (tty) {
        // \x1b[K: clears what a longer line before left to the right of this one.
        stream.write(`\r${line}\x1b[K`);
        written = { line, label: progress.label, tenth: null, at: 0 };
        return;
      }
      const percent = progressPercent(progress);
      const tenth = percent === null ? null : Math.floor(Math.min(100, percent) / 10);
      const due =
        !written ||
        written.label !== progress.label ||
        (tenth === null ? now() - written.at >= UNKNOWN_TOTAL_LINE_MS : tenth !== written.tenth);
      if (!due) return;
      stream.write(`${line}\n`);
      written = { line, label: progress.label, tenth, at: now() };
    },
    /** Before anything else is printed: a terminal's line is ended; a log gets the last line if it has not yet. */
    end(): void {
      if (!written || last === null) return;
      if (tty) stream.write('\n');
      else if (last !== written.line) stream.write(`${last}\n`);
      written = null;
      last = null;
    },
  };
}
