import type { FetchProgress } from '@quantix/core';

export interface ProgressMeterOptions {
  /** Least time between two reports, unless a whole percent was crossed. Default 250 ms. */
  intervalMs?: number;
  /** Window over which the rate is measured. Default 5 s. */
  rateWindowMs?: number;
  now?: () => number;
}

/**
 * Turns a stream of byte counts into throttled progress reports with a rate and an ETA. A report
 * goes out when `intervalMs` has passed since the last one or a whole percent was crossed, so a
 * fast download reports at most ~100 times plus once per interval, and a slow one still moves.
 */
export class ProgressMeter {
  private readonly intervalMs: number;
  private readonly rateWindowMs: number;
  private readonly now: () => number;
  private readonly samples: { at: number; bytes: number }[] = [];
  private lastReportAt = Number.NEGATIVE_INFINITY;
  private lastReportPercent = -1;
  private bytesDone = 0;
  private bytesTotal: number | null = null;

  constructor(
    private readonly report: (progress: FetchProgress) => void,
    options: ProgressMeterOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 250;
    this.rateWindowMs = options.rateWindowMs ?? 5000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Starts (or restarts, after the source changed) counting from `bytesDone` of `bytesTotal`. */
  reset(bytesDone: number, bytesTotal: number | null): void {
    this.bytesDone = bytesDone;
    this.bytesTotal = bytesTotal;
    this.samples.length = 0;
    this.samples.push({ at: this.now(), bytes: bytesDone });
  }

  setTotal(bytesTotal: number | null): void {
    this.bytesTotal = bytesTotal;
  }

  /** Records `bytes` more; reports when due. */
  add(bytes: number): void {
    this.bytesDone += bytes;
    const at = this.now();
    const percent = this.percent();
    const crossed = percent !== null && Math.floor(percent) > Math.floor(this.lastReportPercent);
    if (at - this.lastReportAt >= this.intervalMs || crossed) this.emit(at);
  }

  /** Reports now, whatever the throttle says (start, end, phase changes). */
  flush(): void {
    this.emit(this.now());
  }

  current(): FetchProgress {
    return this.snapshot(this.now());
  }

  private percent(): number | null {
    if (this.bytesTotal === null || this.bytesTotal <= 0) return null;
    return Math.min(100, (this.bytesDone / this.bytesTotal) * 100);
  }

  private snapshot(at: number): FetchProgress {
    const samples = this.samples;
    samples.push({ at, bytes: this.bytesDone });
    while (samples.length > 2 && at - (samples[1] as { at: number }).at >= this.rateWindowMs) samples.shift();
    const first = samples[0] as { at: number; bytes: number };
    const elapsed = (at - first.at) / 1000;
    const bytesPerSecond = elapsed >= 0.05 ? Math.max(0, (this.bytesDone - first.bytes) / elapsed) : null;
    const remaining = this.bytesTotal === null ? null : Math.max(0, this.bytesTotal - this.bytesDone);
    const etaSeconds =
      remaining === null ? null : remaining === 0 ? 0 : bytesPerSecond ? remaining / bytesPerSecond : null;
    // Keep the sample list short: one sample per report is plenty for a rate.
    if (samples.length > 64) samples.splice(1, samples.length - 64);
    return {
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      percent: this.percent(),
      bytesPerSecond,
      etaSeconds,
    };
  }

  private emit(at: number): void {
    this.lastReportAt = at;
    const progress = this.snapshot(at);
    this.lastReportPercent = progress.percent ?? -1;
    this.report(progress);
  }
}
