import type { Database } from '@quantix/core';
import pg from 'pg';
import type { Logger } from 'pino';

export interface ReplicaListenerOptions {
  database: Database;
  logger: Logger;
  /** Delay before listening again after the listening connection dropped (default 1 s). */
  relistenDelayMs?: number;
  /** The listening connection's `application_name`: which replica's it is, in `pg_stat_activity`. */
  applicationName?: string;
}

/**
 * What replicas tell each other, as PostgreSQL notifications: one connection of this replica's
 * own (a pooled one would be handed to queries and drop its LISTENs) listening on every channel
 * a part of the control plane subscribed to, listening again when it drops — after which each
 * subscriber catches up (`onRelisten`), since notifications sent meanwhile are gone.
 *
 * Only on PostgreSQL: the embedded PGlite is one replica, with nobody to tell.
 */
export class ReplicaListener {
  private readonly handlers = new Map<string, (payload: string) => void>();
  private readonly catchUps: (() => Promise<void>)[] = [];
  private client: pg.Client | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ReplicaListenerOptions) {}

  /** Whether other replicas can exist (PostgreSQL), so there is anyone to notify. */
  get shared(): boolean {
    return this.options.database.client === 'pg';
  }

  /** Subscribes before start(). Channel names are fixed identifiers, never input. */
  on(channel: string, handler: (payload: string) => void, onRelisten?: () => Promise<void>): void {
    this.handlers.set(channel, handler);
    if (onRelisten) this.catchUps.push(onRelisten);
  }

  async start(): Promise<void> {
    if (this.shared) await this.listen();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** Sends a notification to every replica listening on `channel` (after the current transaction commits). */
  async notify(channel: string, payload: string, db: Database['knex'] = this.options.database.knex): Promise<void> {
    if (!this.shared) return;
    await db.raw('select pg_notify(?, ?)', [channel, payload]);
  }

  /**
   * Sends each payload, in order, as a notification on `channel`: one statement, one round trip,
   * however many. (PostgreSQL delivers a transaction's notifications in the order they were sent.)
   */
  async notifyAll(channel: string, payloads: readonly string[]): Promise<void> {
    if (!this.shared || payloads.length === 0) return;
    await this.options.database.knex.raw(
      'select pg_notify(?, payload) from json_array_elements_text(?::json) with ordinality as sent(payload, n) order by n',
      [channel, JSON.stringify(payloads)],
    );
  }

  private async listen(): Promise<void> {
    const { logger } = this.options;
    // The connection settings knex was given: the same server and credentials.
    const connection = this.options.database.knex.client.config.connection as pg.ClientConfig | string;
    const { applicationName } = this.options;
    const client = new pg.Client({
      ...(typeof connection === 'string' ? { connectionString: connection } : connection),
      ...(applicationName ? { application_name: applicationName } : {}),
    });
    client.on('notification', (message) => {
      const handler = this.handlers.get(message.channel);
      try {
        handler?.(message.payload ?? '');
      } catch (error) {
        logger.warn({ err: error, channel: message.channel }, 'handling a notification failed');
      }
    });
    const lost = (error?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      logger.warn({ err: error }, 'the replica listener lost its connection; listening again');
      client.end().catch(() => undefined);
      this.relistenLater();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    this.client = client;
    try {
      await client.connect();
      for (const channel of this.handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      this.client = undefined;
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  private relistenLater(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.listen()
        .then(() => Promise.all(this.catchUps.map((catchUp) => catchUp())))
        .catch((error) => {
          this.options.logger.warn({ err: error }, 'listening for other replicas failed; trying again');
          this.relistenLater();
        });
    }, this.options.relistenDelayMs ?? 1000);
    this.retryTimer.unref();
  }
}
