import { randomUUID } from 'node:crypto';
import { ErrorCode, QuantixError } from '@quantix/core';
import {
  assertQueueName,
  DEFAULT_QUEUE_DEFINITION,
  type JobHandler,
  type JobInfo,
  type JobQueue,
  type JobState,
  type QueueDefinition,
  type SendOptions,
} from './job-queue.js';

interface StoredJob {
  id: string;
  queue: string;
  data: object;
  state: JobState;
  retryCount: number;
  runAt: number;
  error?: string;
}

interface Queue {
  definition: Required<QueueDefinition>;
  jobs: Map<string, StoredJob>;
  workers: { handler: JobHandler<object>; running: number; concurrency: number }[];
  /** When a wake-up is already set for (one timer per due time, however many jobs wait). */
  wakeups: Set<number>;
}

/**
 * The job queue of the embedded single replica (PGlite, `quantix up`): the same contract as
 * pg-boss, in memory. Jobs do not outlive the process — what they stood for is reconciled from
 * the database at the next start, as a replica's would be — and there is no other replica to
 * take a job over, so leases are not needed.
 */
export class InProcessJobQueue implements JobQueue {
  private readonly queues = new Map<string, Queue>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  private readonly controller = new AbortController();
  private started = false;

  async start(): Promise<void> {
    this.started = true;
    for (const name of this.queues.keys()) this.pump(name);
  }

  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.started = false;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const settled = Promise.allSettled([...this.running]);
    const timeout = new Promise((resolve) => setTimeout(resolve, options.timeoutMs ?? 30_000).unref());
    await Promise.race([settled, timeout]);
    this.controller.abort();
  }

  async define(name: string, definition: QueueDefinition = {}): Promise<void> {
    assertQueueName(name);
    const merged = { ...DEFAULT_QUEUE_DEFINITION, ...definition };
    const existing = this.queues.get(name);
    if (existing) existing.definition = merged;
    else this.queues.set(name, { definition: merged, jobs: new Map(), workers: [], wakeups: new Set() });
  }

  async send<Data extends object>(name: string, data: Data, options: SendOptions = {}): Promise<string | null> {
    const queue = this.queue(name);
    const id = options.id ?? randomUUID();
    if (queue.jobs.has(id)) return null;
    const runAt = Date.now() + (options.startAfterSeconds ?? 0) * 1000;
    queue.jobs.set(id, { id, queue: name, data, state: 'created', retryCount: 0, runAt });
    this.wakeAt(name, runAt);
    return id;
  }

  async work<Data extends object>(
    name: string,
    handler: JobHandler<Data>,
    options: { concurrency?: number } = {},
  ): Promise<void> {
    const queue = this.queue(name);
    queue.workers.push({ handler: handler as JobHandler<object>, running: 0, concurrency: options.concurrency ?? 1 });
    this.pump(name);
  }

  async every(name: string, seconds: number, handler: JobHandler<Record<string, never>>): Promise<void> {
    await this.define(name, { singleton: true, retryLimit: 0 });
    await this.work(name, handler);
    const tick = () => {
      if (!this.started) return;
      const queue = this.queue(name);
      // One run per period; a run still going when the next is due is not doubled.
      const pending = [...queue.jobs.values()].some((job) => job.state === 'created' || job.state === 'active');
      if (!pending) void this.send(name, {});
      this.later(tick, seconds * 1000);
    };
    if (this.started) tick();
    else this.later(tick, 0);
  }

  async getJob(name: string, id: string): Promise<JobInfo | null> {
    const job = this.queue(name).jobs.get(id);
    if (!job) return null;
    return {
      id: job.id,
      queue: job.queue,
      state: job.state,
      retryCount: job.retryCount,
      ...(job.error !== undefined ? { error: job.error } : {}),
    };
  }

  private queue(name: string): Queue {
    const queue = this.queues.get(name);
    if (!queue) throw new QuantixError(ErrorCode.NOT_FOUND, `queue ${name} is not defined (define it first)`);
    return queue;
  }

  private later(run: () => void, delayMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }

  private wakeAt(name: string, runAt: number): void {
    const { wakeups } = this.queue(name);
    if (wakeups.has(runAt)) return;
    wakeups.add(runAt);
    this.later(
      () => {
        wakeups.delete(runAt);
        this.pump(name);
      },
      Math.max(0, runAt - Date.now()),
    );
  }

  /** Hands due jobs to free workers. */
  private pump(name: string): void {
    if (!this.started) return;
    const queue = this.queue(name);
    for (const worker of queue.workers) {
      while (worker.running < worker.concurrency) {
        if (queue.definition.singleton && [...queue.jobs.values()].some((job) => job.state === 'active')) return;
        const now = Date.now();
        const waiting = [...queue.jobs.values()].filter((job) => job.state === 'created' || job.state === 'retry');
        const due = waiting.find((job) => job.runAt <= now);
        if (!due) {
          // A timer may fire a moment early: look again when the next job is due.
          const next = Math.min(...waiting.map((job) => job.runAt));
          if (Number.isFinite(next)) this.wakeAt(name, next);
          return;
        }
        due.state = 'active';
        worker.running++;
        const run = this.run(queue, due, worker.handler).finally(() => {
          worker.running--;
          this.running.delete(run);
          this.pump(name);
        });
        this.running.add(run);
      }
    }
  }

  private async run(queue: Queue, job: StoredJob, handler: JobHandler<object>): Promise<void> {
    try {
      await handler({
        id: job.id,
        queue: job.queue,
        data: job.data,
        retryCount: job.retryCount,
        signal: this.controller.signal,
      });
      job.state = 'completed';
      delete job.error;
    } catch (error) {
      job.error = (error as Error)?.message ?? String(error);
      const { retryLimit, retryDelaySeconds, retryBackoff } = queue.definition;
      if (job.retryCount >= retryLimit) {
        job.state = 'failed';
        return;
      }
      job.retryCount++;
      job.state = 'retry';
      job.runAt = Date.now() + retryDelayMs(retryDelaySeconds, retryBackoff, job.retryCount);
      this.wakeAt(job.queue, job.runAt);
    }
  }
}

/**
 * Delay before retry number `retry` (1-based), as pg-boss computes it: the base delay, or with
 * backoff between base × 2^(retry−1) and twice that, at random, so retries of many jobs spread out.
 */
export function retryDelayMs(baseSeconds: number, backoff: boolean, retry: number): number {
  if (!backoff) return baseSeconds * 1000;
  const ceiling = baseSeconds * 1000 * 2 ** Math.min(16, retry);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}
