import { randomUUID } from 'node:crypto';
import pg from 'pg';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import {
  assertQueueName,
  DEFAULT_QUEUE_DEFINITION,
  type JobHandler,
  type JobInfo,
  type JobQueue,
  type QueueDefinition,
  type SendOptions,
} from './job-queue.js';

export interface PgBossJobQueueOptions {
  /** The PostgreSQL the replicas share. */
  connectionString: string;
  /** Schema of the queue's tables (default `pgboss`). */
  schema?: string;
  logger: Logger;
  /** How often an idle worker asks for jobs (default 0.5 s, pg-boss's minimum). */
  pollingIntervalSeconds?: number;
  /** How often expired leases are looked for, by one replica at a time (default 2 s). */
  maintenanceIntervalSeconds?: number;
  /** Connections to PostgreSQL this queue may hold (default 4). */
  maxConnections?: number;
}

interface Worker {
  stopped: boolean;
  loop: Promise<void>;
  wake: () => void;
}

/**
 * The job queue of replicas on PostgreSQL, on pg-boss (10.x: the last line that runs on Node 20).
 *
 * pg-boss takes a dead replica's jobs over when their expiry passes, but has no heartbeat: a job
 * longer than its expiry would be run twice. So each run here holds a lease — the job's
 * `started_on`, which pg-boss's expiry counts from — renewed every third of the lease while the
 * handler runs, and only where the run still owns the job (same `retry_count`, still active).
 * Completion and failure go through pg-boss right after a successful renewal, so they can only
 * ever end the run that renewed. A run that finds its lease gone aborts its signal and ends
 * nothing: the replica that took the job over owns it now.
 */
export class PgBossJobQueue implements JobQueue {
  private readonly boss: PgBoss;
  private readonly schema: string;
  private readonly workers: Worker[] = [];
  private readonly leases = new Map<string, number>();
  private readonly stopping = new AbortController();

  constructor(private readonly options: PgBossJobQueueOptions) {
    this.schema = options.schema ?? 'pgboss';
    this.boss = new PgBoss({
      connectionString: options.connectionString,
      schema: this.schema,
      max: options.maxConnections ?? 4,
      application_name: 'quantix-jobs',
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 2,
      monitorStateIntervalSeconds: 60,
      // Periodic work is `every`, on send throttling: pg-boss's cron (minutes) is not used.
      schedule: false,
    });
    this.boss.on('error', (error) => options.logger.warn({ err: error }, 'job queue error'));
  }

  async start(): Promise<void> {
    await this.boss.start();
  }

  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    for (const worker of this.workers) {
      worker.stopped = true;
      worker.wake();
    }
    const timeout = new Promise((resolve) => setTimeout(resolve, options.timeoutMs ?? 30_000).unref());
    await Promise.race([Promise.allSettled(this.workers.map((worker) => worker.loop)), timeout]);
    this.stopping.abort();
    await this.boss.stop({ graceful: false, wait: true, timeout: 1000 });
  }

  async define(name: string, definition: QueueDefinition = {}): Promise<void> {
    assertQueueName(name);
    const merged = { ...DEFAULT_QUEUE_DEFINITION, ...definition };
    this.leases.set(name, merged.leaseSeconds);
    const queue: Omit<PgBoss.Queue, 'name'> = {
      policy: merged.singleton ? 'singleton' : 'standard',
      retryLimit: merged.retryLimit,
      retryDelay: merged.retryDelaySeconds,
      retryBackoff: merged.retryBackoff,
      expireInSeconds: merged.leaseSeconds,
    };
    // Replicas that start together define the same queues at once, and pg-boss's DDL deadlocks
    // between them: one definition at a time, across replicas, under an advisory lock held on a
    // connection of its own (pg-boss's pool may run the lock and unlock on different sessions).
    const lock = new pg.Client({ connectionString: this.options.connectionString });
    await lock.connect();
    try {
      await lock.query('select pg_advisory_lock(hashtext($1))', [`quantix-define:${this.schema}`]);
      if (await this.boss.getQueue(name)) await this.boss.updateQueue(name, { name, ...queue });
      else await this.boss.createQueue(name, { name, ...queue });
    } finally {
      await lock.end().catch(() => undefined);
    }
  }

  async send<Data extends object>(name: string, data: Data, options: SendOptions = {}): Promise<string | null> {
    assertQueueName(name);
    const sent = await this.boss.send(name, data, {
      id: options.id ?? randomUUID(),
      ...(options.startAfterSeconds ? { startAfter: options.startAfterSeconds } : {}),
    });
    for (const worker of this.workers) worker.wake();
    return sent;
  }

  async work<Data extends object>(
    name: string,
    handler: JobHandler<Data>,
    options: { concurrency?: number } = {},
  ): Promise<void> {
    assertQueueName(name);
    const poll = (this.options.pollingIntervalSeconds ?? 0.5) * 1000;
    for (let i = 0; i < (options.concurrency ?? 1); i++) {
      const worker: Worker = { stopped: false, loop: Promise.resolve(), wake: () => {} };
      worker.loop = this.loop(name, handler as JobHandler<object>, worker, poll);
      this.workers.push(worker);
    }
  }

  async every(name: string, seconds: number, handler: JobHandler<Record<string, never>>): Promise<void> {
    await this.define(name, { singleton: true, retryLimit: 0 });
    await this.work(name, handler);
    // Every replica offers a run each period; pg-boss keeps one per period (singletonSeconds) and
    // the singleton policy one active at a time.
    const offer = async () => {
      if (this.stopping.signal.aborted) return;
      await this.boss
        .send(name, {}, { singletonSeconds: seconds, singletonKey: name })
        .catch((error) => this.options.logger.warn({ err: error, queue: name }, 'could not offer a periodic job'));
      setTimeout(() => void offer(), seconds * 1000).unref();
    };
    await offer();
  }

  async getJob(name: string, id: string): Promise<JobInfo | null> {
    const job = await this.boss.getJobById<object>(name, id, { includeArchive: true });
    if (!job) return null;
    const output = job.output as { message?: string; value?: { message?: string } } | null;
    const error =
      job.state === 'failed' || job.state === 'retry' ? (output?.message ?? output?.value?.message) : undefined;
    return {
      id: job.id,
      queue: job.name,
      state: job.state,
      retryCount: job.retryCount,
      ...(error !== undefined ? { error } : {}),
    };
  }

  private async loop(name: string, handler: JobHandler<object>, worker: Worker, pollMs: number): Promise<void> {
    while (!worker.stopped) {
      let jobs: PgBoss.JobWithMetadata<object>[] = [];
      try {
        jobs = await this.boss.fetch<object>(name, { batchSize: 1, includeMetadata: true });
      } catch (error) {
        this.options.logger.warn({ err: error, queue: name }, 'fetching jobs failed');
      }
      const job = jobs[0];
      if (job) {
        await this.run(name, job, handler);
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        worker.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private async run(name: string, job: PgBoss.JobWithMetadata<object>, handler: JobHandler<object>): Promise<void> {
    const lease = new AbortController();
    const abortOnStop = () => lease.abort();
    this.stopping.signal.addEventListener('abort', abortOnStop);
    const leaseMs = (this.leases.get(name) ?? job.expireInSeconds ?? DEFAULT_QUEUE_DEFINITION.leaseSeconds) * 1000;
    let renewedAt = Date.now();
    const heartbeat = setInterval(() => {
      void this.renew(name, job).then((state) => {
        if (state === 'held') renewedAt = Date.now();
        // Gone for sure, or unconfirmed for a whole lease (another replica may have it now).
        else if (state === 'lost' || Date.now() - renewedAt >= leaseMs) lease.abort();
      });
    }, leaseMs / 3);
    let failure: unknown;
    let failed = false;
    try {
      await handler({ id: job.id, queue: name, data: job.data, retryCount: job.retryCount, signal: lease.signal });
    } catch (error) {
      failed = true;
      failure = error;
    } finally {
      clearInterval(heartbeat);
      this.stopping.signal.removeEventListener('abort', abortOnStop);
    }
    // Renewed just now, the job cannot expire for a whole lease: what follows ends this run only.
    const held = await this.renew(name, job);
    if (held !== 'held') {
      this.options.logger.warn(
        { queue: name, job: job.id, lease: held },
        held === 'lost'
          ? 'a job run lost its lease; the replica that took it over ends it'
          : 'a job run could not confirm its lease; it is left to expire and run again',
      );
      return;
    }
    try {
      if (failed) {
        await this.boss.fail(name, job.id, { message: (failure as Error)?.message ?? String(failure) });
      } else {
        await this.boss.complete(name, job.id);
      }
    } catch (error) {
      this.options.logger.warn(
        { err: error, queue: name, job: job.id },
        'ending a job failed; its lease will hand it on',
      );
    }
  }

  /** Extends this run's lease: `lost` when the run no longer holds the job, `unknown` when PostgreSQL did not answer. */
  private async renew(name: string, job: PgBoss.JobWithMetadata<object>): Promise<'held' | 'lost' | 'unknown'> {
    try {
      const { rows } = await this.boss
        .getDb()
        .executeSql(
          `UPDATE ${this.schema}.job SET started_on = now() WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3 RETURNING id`,
          [name, job.id, job.retryCount],
        );
      return rows.length === 1 ? 'held' : 'lost';
    } catch (error) {
      this.options.logger.warn({ err: error, queue: name, job: job.id }, 'renewing a job lease failed');
      return 'unknown';
    }
  }
}
