/**
 * Durable background work — downloads, scans, health sweeps, reconciliation after a restart —
 * as jobs: each runs once at a time, is retried with backoff when it fails, and is taken over by
 * another replica when the one running it dies (its lease runs out). Two implementations pass
 * the same contract tests (jobs.integration.test.ts): pg-boss on PostgreSQL for replicas, and an
 * in-process queue for the embedded single replica on PGlite.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, QuantixError } from '@quantix/core';

export type JobState = 'created' | 'retry' | 'active' | 'completed' | 'failed' | 'cancelled';

export interface QueueDefinition {
  /** Retries after the first run fails (default 3). */
  retryLimit?: number;
  /** Delay before the first retry (default 1 s); doubled for each later one with backoff. */
  retryDelaySeconds?: number;
  /** Exponential backoff with jitter between retries (default true). */
  retryBackoff?: boolean;
  /**
   * How long a run holds its job without a sign of life: the queue renews the lease while the
   * handler runs, so this bounds how long a dead replica's jobs wait, not how long a job may take
   * (default 30 s).
   */
  leaseSeconds?: number;
  /** At most one job of this queue runs at a time, across every replica (default false). */
  singleton?: boolean;
}

export interface SendOptions {
  /**
   * The job's id, for idempotent sends: a second send with an id already used is a no-op and
   * returns null. A UUID. Default: a new one.
   */
  id?: string;
  /** Run no earlier than this many seconds from now. */
  startAfterSeconds?: number;
}

export interface Job<Data> {
  id: string;
  queue: string;
  data: Data;
  /** 0 on the first run, 1 on the first retry, … */
  retryCount: number;
  /**
   * Aborted when this run no longer holds the job (its lease was lost, e.g. to a partition, and
   * another replica may run it now) or the queue is stopping. A handler stops writing when it is.
   */
  signal: AbortSignal;
}

export type JobHandler<Data> = (job: Job<Data>) => Promise<void>;

export interface JobInfo {
  id: string;
  queue: string;
  state: JobState;
  retryCount: number;
  /** What the last failed run threw (its message), if it failed. */
  error?: string;
}

export interface JobQueue {
  start(): Promise<void>;
  /** Stops taking jobs and waits (up to `timeoutMs`) for the running ones; a job not finished by then is left to its lease. */
  stop(options?: { timeoutMs?: number }): Promise<void>;
  /** Creates the queue, or updates its definition. Call before send or work. */
  define(queue: string, definition?: QueueDefinition): Promise<void>;
  /** Enqueues a job; its id, or null when `options.id` was already used. */
  send<Data extends object>(queue: string, data: Data, options?: SendOptions): Promise<string | null>;
  /** Runs the queue's jobs in this process, `concurrency` at a time (default 1). */
  work<Data extends object>(
    queue: string,
    handler: JobHandler<Data>,
    options?: { concurrency?: number },
  ): Promise<void>;
  /**
   * Periodic singleton work: `handler` runs every `seconds`, on one replica at a time, whichever
   * replicas call this. Defines the queue itself.
   */
  every(queue: string, seconds: number, handler: JobHandler<Record<string, never>>): Promise<void>;
  getJob(queue: string, id: string): Promise<JobInfo | null>;
}

export const DEFAULT_QUEUE_DEFINITION: Required<QueueDefinition> = {
  retryLimit: 3,
  retryDelaySeconds: 1,
  retryBackoff: true,
  leaseSeconds: 30,
  singleton: false,
};

/** Queue names: what both implementations accept (pg-boss's rule), so a name works on both. */
export function assertQueueName(name: string): void {
  if (!/^[A-Za-z_][\w-]{0,49}$/.test(name)) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `queue name ${JSON.stringify(name)}: letters, digits, _ and -, at most 50, not starting with a digit`,
    );
  }
}

/** A job's id from what makes it unique, laid out as a UUID: a second send of the same work is a no-op. */
export function jobIdOf(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\0')).digest('hex');
  // Version 5 and RFC 4122 variant bits: a UUID both queues accept.
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
