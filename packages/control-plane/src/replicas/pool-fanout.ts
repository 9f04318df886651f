import type { Database } from '@quantix/core';
import pg from 'pg';
import type { Logger } from 'pino';

const CHANNEL = 'quantix_pool_changed';

export interface PoolFanoutOptions {
  database: Database;
  replicaId: string;
  logger: Logger;
  /** Pushes every node this replica holds its desired pool set again. */
  pushToOwnNodes: () => Promise<void>;
  /** Delay before listening again after the listening connection dropped (default 1 s). */
  relistenDelayMs?: number;
}

/**
 * A pool change reaches every node, whichever replica holds it: the replica that made the change
 * pushes its own nodes and sends a PostgreSQL notification (`quantix_pool_changed`, payload
 * `replicaId:poolId`, delivered after the change committed); every other replica, listening on a
 * connection of its own, pushes its own nodes in turn. Each replica recomputes the sets from the
 * database, so a lost or doubled notification costs a push, never a wrong set; and every
 * (re)connect of a node pushes its full set anyway.
 *
 * On PGlite (one embedded replica) there is nobody to tell: only the local push runs.
 */
export class PoolFanout {
  private listener: pg.Client | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PoolFanoutOptions) {}

  private get shared(): boolean {
    return this.options.database.client === 'pg';
  }

  async start(): Promise<void> {
    if (this.shared) await this.listen();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** After a pool was created, changed or deleted here. */
  async changed(poolId: string): Promise<void> {
    await this.options.pushToOwnNodes();
    if (!this.shared) return;
    await this.options.database.knex.raw('select pg_notify(?, ?)', [CHANNEL, `${this.options.replicaId}:${poolId}`]);
  }

  private async listen(): Promise<void> {
    const { logger } = this.options;
    // The connection settings knex was given: the same server and credentials, one connection
    // of its own (a pooled one would be handed to queries and drop the LISTEN).
    const connection = this.options.database.knex.client.config.connection as pg.ClientConfig | string;
    const client = new pg.Client(connection);
    client.on('notification', (message) => {
      const [from, poolId] = (message.payload ?? '').split(':');
      if (from === this.options.replicaId) return;
      this.options
        .pushToOwnNodes()
        .catch((error) => logger.warn({ err: error, poolId }, 'pushing a pool change failed'));
    });
    const lost = (error?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      logger.warn({ err: error }, 'the pool-change listener lost its connection; listening again');
      client.end().catch(() => undefined);
      this.relistenLater();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (error) {
      this.listener = undefined;
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  private relistenLater(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      // Changes made while nobody listened are caught up by one push once listening again.
      this.listen()
        .then(() => this.options.pushToOwnNodes())
        .catch((error) => {
          this.options.logger.warn({ err: error }, 'listening for pool changes failed; trying again');
          this.relistenLater();
        });
    }, this.options.relistenDelayMs ?? 1000);
    this.retryTimer.unref();
  }
}
