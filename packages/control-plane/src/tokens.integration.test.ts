/**
 * Single-use tickets on both databases, and across two replicas (two connections to one
 * PostgreSQL database): issued by one, spent by whichever is shown it first, once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Database, openDatabase } from '@quantix/core';
import { type OpenTestDatabase, openTestDatabase, TEST_DATABASE_CLIENTS } from '@quantix/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SingleUseTickets } from './tokens.js';

describe.each(TEST_DATABASE_CLIENTS)('single-use tickets on %s', (client) => {
  let db: OpenTestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(client);
  });
  afterAll(() => db?.close());

  const book = <G>(purpose: string, ttlMs = 60_000) =>
    new SingleUseTickets<G>({ knex: db.database.knex, purpose, ttlMs });

  it('gives what a ticket was issued for once, then nothing; keeps only its digest', async () => {
    const consoles = book<{ vmId: string; type: string }>('console');
    const issued = await consoles.issue({ vmId: 'vm-1', type: 'serial' });
    expect(issued.expiresAt.getTime()).toBeGreaterThan(Date.now() + 50_000);
    const stored = await db.database.knex.raw('select * from single_use_tickets');
    expect(JSON.stringify(stored.rows)).not.toContain(issued.ticket);
    expect(await consoles.redeem(issued.ticket)).toEqual({ vmId: 'vm-1', type: 'serial' });
    expect(await consoles.redeem(issued.ticket)).toBeUndefined();
  });

  it('refuses a ticket of another purpose and spends it by trying; refuses unknown and expired ones', async () => {
    const streams = book<true>('event-stream');
    const consoles = book<{ vmId: string }>('console');
    const { ticket } = await streams.issue(true);
    expect(await consoles.redeem(ticket)).toBeUndefined();
    expect(await streams.redeem(ticket)).toBeUndefined();
    for (const junk of ['', 'not-a-ticket', `${ticket}x`]) expect(await streams.redeem(junk)).toBeUndefined();

    const brief = book<true>('event-stream', 30);
    const short = await brief.issue(true);
    await sleep(80);
    expect(await brief.redeem(short.ticket)).toBeUndefined();
  });

  it('sweeps expired tickets as new ones are issued', async () => {
    const brief = book<true>('event-stream', 1);
    for (let i = 0; i < 5; i++) await brief.issue(true);
    await sleep(20);
    const kept = await book<true>('event-stream').issue(true);
    const { rows } = await db.database.knex.raw(
      'select count(*)::int as n from single_use_tickets where expires_at < now()',
    );
    expect(rows[0].n).toBe(0);
    expect(await book<true>('event-stream').redeem(kept.ticket)).toBe(true);
  });
});

describe('single-use tickets across replicas on one PostgreSQL', () => {
  let db: OpenTestDatabase;
  let other: Database;
  beforeAll(async () => {
    db = await openTestDatabase('pg');
    other = await openDatabase(db.config);
  });
  afterAll(async () => {
    await other?.close();
    await db?.close();
  });

  it('is redeemed on a replica that did not issue it, exactly once however many try at the same moment', async () => {
    const a = new SingleUseTickets<{ vmId: string }>({ knex: db.database.knex, purpose: 'console', ttlMs: 60_000 });
    const b = new SingleUseTickets<{ vmId: string }>({ knex: other.knex, purpose: 'console', ttlMs: 60_000 });
    const { ticket } = await a.issue({ vmId: 'vm-7' });
    const tries = await Promise.all([b.redeem(ticket), a.redeem(ticket), b.redeem(ticket), a.redeem(ticket)]);
    expect(tries.filter((grant) => grant !== undefined)).toEqual([{ vmId: 'vm-7' }]);
  });
});
