/**
 * Database work from many callers done together: each caller awaits its own item's result, and
 * the items that arrive while a batch is being stored (or in the same turn of the event loop)
 * go in the next batch, one call of `store` — a handful of statements for hundreds of nodes
 * instead of a transaction each. Nothing is reported stored before `store` returned.
 *
 * At low load a lone item is stored on the next turn, alone: no timer, no added wait. Under a
 * steady trickle (a storm's connections arriving one by one as the process gets to them) each
 * store would finish before the next item came, and every item would pay a batch's statements
 * alone — which slows the process, which keeps the trickle going. So batches start at least
 * `spacingMs` apart: a lone item waits only when another batch started just before it.
 */
export class Batcher<In, Out> {
  private waiting: { item: In; resolve(value: Out): void; reject(error: unknown): void }[] = [];
  private flushing: Promise<void> | undefined;
  private lastStart = Number.NEGATIVE_INFINITY;

  /**
   * `store` stores a batch and returns one result per item, in order; a result that is an
   * Error fails that item alone. When `store` throws, each item of the batch is stored again
   * alone, so that one bad item (a row deleted meanwhile) fails nobody else.
   */
  constructor(
    private readonly store: (items: readonly In[]) => Promise<readonly (Out | Error)[]>,
    private readonly maxBatch = 1_000,
    private readonly spacingMs = 10,
  ) {}

  add(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      // Started on the next turn at the earliest: the items arriving in this one (a burst of frames) join it.
      this.flushing ??= this.nextStart().then(() => this.flush());
    });
  }

  /** Settles once every item added so far has been stored or failed (at once when none waits). */
  async idle(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        if (performance.now() - this.lastStart < this.spacingMs) await this.nextStart();
        this.lastStart = performance.now();
        const batch = this.waiting.splice(0, this.maxBatch);
        try {
          this.settle(batch, await this.store(batch.map((w) => w.item)));
        } catch (error) {
          if (batch.length === 1) {
            batch[0]?.reject(error);
            continue;
          }
          for (const one of batch) {
            try {
              this.settle([one], await this.store([one.item]));
            } catch (alone) {
              one.reject(alone);
            }
          }
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Resolves on the next turn, or once `spacingMs` have passed since the last batch started. */
  private nextStart(): Promise<void> {
    const wait = this.lastStart + this.spacingMs - performance.now();
    return new Promise<void>((started) => (wait > 0 ? setTimeout(started, wait) : setImmediate(started)));
  }

  private settle(
    batch: readonly { resolve(value: Out): void; reject(error: unknown): void }[],
    results: readonly (Out | Error)[],
  ) {
    batch.forEach((waiting, i) => {
      const result = results[i];
      if (result instanceof Error) waiting.reject(result);
      else waiting.resolve(result as Out);
    });
  }
}
