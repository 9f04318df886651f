import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { progressReporter } from './progress.js';

/** A real stream standing for stderr, a terminal or not, and what was written to it. */
function stderrLike(isTTY: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY });
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(String(chunk)));
  return { stream, text: () => chunks.join('') };
}

const MiB = 1024 * 1024;

describe('progressReporter', () => {
  it('writes a log a line per tenth and the last one, not a line per chunk', () => {
    const { stream, text } = stderrLike(false);
    const progress = progressReporter(stream);
    // A 100 MiB export in 64 KiB chunks: 1,600 reports.
    for (let done = 64 * 1024; done <= 100 * MiB; done += 64 * 1024) {
      progress.show({ label: 'disk.qcow2', percent: null, bytesDone: done, bytesTotal: 100 * MiB });
    }
    progress.end();
    const lines = text().split('\n').filter(Boolean);
    expect(lines).toHaveLength(11);
    expect(lines[0]).toMatch(/^disk\.qcow2 \[-+\] {3}0% 64\.0 KiB \/ 100 MiB$/);
    expect(lines.map((line) => line.match(/(\d+)% /)?.[1])).toEqual([
      '0',
      '10',
      '20',
      '30',
      '40',
      '50',
      '60',
      '70',
      '80',
      '90',
      '100',
    ]);
    expect(text()).not.toContain('\r');
  });

  it('writes the last line at the end when the last tenth was written before it', () => {
    const { stream, text } = stderrLike(false);
    const progress = progressReporter(stream);
    progress.show({ label: 'a.iso', percent: null, bytesDone: 91, bytesTotal: 100 });
    progress.show({ label: 'a.iso', percent: null, bytesDone: 95, bytesTotal: 100 });
    progress.end();
    expect(
      text()
        .split('\n')
        .filter(Boolean)
        .map((line) => line.match(/(\d+)% /)?.[1]),
    ).toEqual(['91', '95']);
    // Ended twice (a follow that fails after it ended): nothing more.
    progress.end();
    expect(text().split('\n').filter(Boolean)).toHaveLength(2);
  });

  it('starts a new line in a log when the label changes (a download that goes on to verify)', () => {
    const { stream, text } = stderrLike(false);
    const progress = progressReporter(stream);
    progress.show({ label: 'Guest', percent: 100, bytesDone: 10, bytesTotal: 10 });
    progress.show({ label: 'Guest (verifying)', percent: 100, bytesDone: 10, bytesTotal: 10 });
    progress.end();
    expect(
      text()
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(' [')[0]),
    ).toEqual(['Guest', 'Guest (verifying)']);
  });

  it('writes a log a line every 10 s while the total is unknown', () => {
    const { stream, text } = stderrLike(false);
    let clock = 0;
    const progress = progressReporter(stream, () => clock);
    for (let second = 0; second <= 25; second++) {
      clock = second * 1000;
      progress.show({ label: 'feed', percent: null, bytesDone: second * MiB, bytesTotal: null });
    }
    progress.end();
    expect(
      text()
        .split('\n')
        .filter(Boolean)
        .map((line) => line.match(/ (\d+\.\d) MiB$/)?.[1]),
    ).toEqual(
      // 0 s (0 B is written as bytes), 10 s, 20 s, and the last at the end.
      [undefined, '10.0', '20.0', '25.0'],
    );
  });

  it('rewrites one line in place on a terminal, clearing what a longer line left, and ends it once', () => {
    const { stream, text } = stderrLike(true);
    const progress = progressReporter(stream);
    progress.show({ label: 'uploading a-longer-name.iso', percent: null, bytesDone: 1, bytesTotal: 4 });
    progress.show({ label: 'uploading a-longer-name.iso', percent: null, bytesDone: 2, bytesTotal: 4 });
    progress.show({ label: 'uploading a-longer-name.iso', percent: null, bytesDone: 2, bytesTotal: 4 });
    progress.end();
    expect(text().match(/\r/g)).toHaveLength(2);
    expect(text().split('\x1b[K')).toHaveLength(3);
    expect(text().endsWith('\n')).toBe(true);
    expect(text().split('\n')).toHaveLength(2);
  });
});
