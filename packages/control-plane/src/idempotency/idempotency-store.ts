import { createHash } from 'node:crypto';
import { ErrorCode, QuantixError } from '@quantix/core';
import type { Knex } from 'knex';
import { ControlPlaneErrorCode } from '../errors.js';
import { rowsOf } from '../rows.js';

/** What a write with an idempotency key does: run, or answer with what its first attempt answered. */
export type IdempotentStart = { run: true } | { run: false; status: number; contentType: string | null; body: string };

export interface StoredAnswer {
  status: number;
  contentType: string | null;
  body: string;
}

/** Keys: what clients use (UUIDs, mostly), printable ASCII, at most 255. */
const KEY = /^[\x21-\x7e]{1,255}$/;
/** How long an answer is kept for retries (and a key cannot be reused). */
const DEFAULT_RETENTION_HOURS = 24;

/**
 * Idempotent writes across replicas (the `Idempotency-Key` header of the IETF draft): the first
 * request with a key runs and its answer is stored in PostgreSQL; a retry with the same key and
 * the same request gets that answer again, on whichever replica it reaches. A retry while the
 * first attempt is still running is IDEMPOTENCY_KEY_IN_USE (409), unless the replica running it
 * is dead — then the retry takes over and runs. A key used for a different request is
 * IDEMPOTENCY_KEY_REUSED (422). A server error (5xx) is not stored: the retry runs again.
 */
export class IdempotencyStore {
  constructor(
    private readonly options: {
      knex: Knex;
      replicaId: string;
      /** Whether a replica is alive (the replica registry). */
      isLive(replicaId: string): Promise<boolean>;
      retentionHours?: number;
    },
  ) {}

  /** The request's fingerprint: method, path with query, and body. */
  static fingerprint(request: { method: string; url: string; body: unknown }): string {
    const body = request.body === undefined ? '' : JSON.stringify(request.body);
    return createHash('sha256').update(`${request.method}\n${request.url}\n${body}`).digest('hex');
  }

  static assertKey(key: string): void {
    if (!KEY.test(key)) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'Idempotency-Key: 1 to 255 printable ASCII characters', {
        details: { issues: [{ path: 'headers.idempotency-key', message: '1 to 255 printable ASCII characters' }] },
      });
    }
  }

  async start(key: string, fingerprint: string): Promise<IdempotentStart> {
    IdempotencyStore.assertKey(key);
    const { knex, replicaId } = this.options;
    const inserted = await knex.raw(
      `insert into idempotency_keys (key, fingerprint, replica_id) values (?, ?, ?)
       on conflict (key) do nothing returning key`,
      [key, fingerprint, replicaId],
    );
    if (rowsOf(inserted).length > 0) return { run: true };
    const row = rowsOf(await knex.raw('select * from idempotency_keys where key = ?', [key]))[0];
    if (!row) return this.start(key, fingerprint); // expired between the two statements
    if (row.fingerprint !== fingerprint) {
      throw new QuantixError(
        ControlPlaneErrorCode.IDEMPOTENCY_KEY_REUSED,
        'This Idempotency-Key was used for a different request; use a new key for a new request',
      );
    }
    if (row.status !== null) {
      return {
        run: false,
        status: Number(row.status),
        contentType: (row.content_type as string | null) ?? null,
        body: (row.body as string | null) ?? '',
      };
    }
    const holder = row.replica_id as string;
    if (holder !== replicaId && !(await this.options.isLive(holder))) {
      // Its replica died mid-request: take it over (once — another retry may race us here).
      const taken = await knex.raw(
        'update idempotency_keys set replica_id = ?, created_at = now() where key = ? and replica_id = ? and status is null returning key',
        [replicaId, key, holder],
      );
      if (rowsOf(taken).length > 0) return { run: true };
    }
    throw new QuantixError(
      ControlPlaneErrorCode.IDEMPOTENCY_KEY_IN_USE,
      'The first request with this Idempotency-Key is still being handled; retry when it has ended',
    );
  }

  /** The first attempt ended: its answer is kept for retries; a server error is forgotten, so a retry runs. */
  async finish(key: string, answer: StoredAnswer): Promise<void> {
    const { knex, replicaId } = this.options;
    if (answer.status >= 500) {
      await knex.raw('delete from idempotency_keys where key = ? and replica_id = ? and status is null', [
        key,
        replicaId,
      ]);
      return;
    }
    await knex.raw(
      'update idempotency_keys set status = ?, content_type = ?, body = ? where key = ? and replica_id = ? and status is null',
      [answer.status, answer.contentType, answer.body, key, replicaId],
    );
  }

  /** Forgets answers older than the retention (the health sweep calls this). */
  async expire(): Promise<number> {
    const hours = this.options.retentionHours ?? DEFAULT_RETENTION_HOURS;
    const result = await this.options.knex.raw(
      'delete from idempotency_keys where created_at < now() - make_interval(hours => ?) returning key',
      [hours],
    );
    return rowsOf(result).length;
  }
}
