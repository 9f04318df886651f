import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { fromJson } from '@quantix/core';
import type { Knex } from 'knex';
import { rowsOf } from './rows.js';

/** A new secret token: 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Compares a presented token with a stored digest in constant time. */
export function tokenMatches(token: string, digest: string | null): boolean {
  if (!digest) return false;
  const presented = Buffer.from(tokenDigest(token), 'hex');
  const stored = Buffer.from(digest, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** The bearer token of an Authorization header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return match?.[1] ?? null;
}

/**
 * Single-use tickets for callers that cannot send a header (a browser's WebSocket or
 * EventSource): issued to a caller that showed its token, kept in PostgreSQL only as digests,
 * and spent at their first presentation, right or wrong, on whichever replica it reaches — so a
 * load balancer may send the viewer anywhere, and no ticket opens a door twice in the cluster.
 * A ticket of one `purpose` opens nothing of another (and is spent by trying). Expiry is read on
 * the database's clock, which every replica shares.
 */
export class SingleUseTickets<Grant> {
  constructor(private readonly options: { knex: Knex; purpose: string; ttlMs: number }) {}

  async issue(grant: Grant): Promise<{ ticket: string; expiresAt: Date }> {
    const { knex, purpose, ttlMs } = this.options;
    const ticket = newToken();
    // Expired tickets go as new ones come, in the same statement (the index on expires_at finds them).
    const [row] = rowsOf(
      await knex.raw(
        `with swept as (delete from single_use_tickets where expires_at < now())
         insert into single_use_tickets (digest, purpose, grant_json, expires_at)
         values (?, ?, ?::jsonb, now() + ? * interval '1 millisecond')
         returning expires_at`,
        [tokenDigest(ticket), purpose, JSON.stringify(grant), ttlMs],
      ),
    );
    return { ticket, expiresAt: new Date(row?.expires_at as string | Date) };
  }

  /** What the ticket was issued for, once, before it expires; undefined otherwise. Any ticket shown is spent. */
  async redeem(ticket: string): Promise<Grant | undefined> {
    const [row] = rowsOf(
      await this.options.knex.raw(
        'delete from single_use_tickets where digest = ? returning purpose, grant_json, expires_at > now() as live',
        [tokenDigest(ticket)],
      ),
    );
    if (!row || row.purpose !== this.options.purpose || row.live !== true) return undefined;
    return fromJson<Grant>(row.grant_json);
  }
}

/**
 * Tickets any replica can check: the grant and its expiry, signed (HMAC-SHA256) with a key every
 * replica shares — nothing stored, so a ticket minted on one replica opens the door on another
 * (a load balancer sends the fetch anywhere). Tickets of one `purpose` are not good for another.
 * They can be shown again until they expire: for tickets that must be spent once, SingleUseTickets.
 * The grant is readable in the ticket (base64url JSON): put nothing secret in it.
 */
export class SignedTickets<Grant> {
  constructor(
    private readonly key: Buffer,
    private readonly purpose: string,
    private readonly ttlMs: number,
  ) {}

  issue(grant: Grant): { ticket: string; expiresAt: Date } {
    const expiresAt = Date.now() + this.ttlMs;
    // The purpose is not in the body: it is signed with it, so another purpose's ticket fails the signature.
    const body = Buffer.from(JSON.stringify({ g: grant, e: expiresAt })).toString('base64url');
    return { ticket: `${body}.${this.sign(body).toString('base64url')}`, expiresAt: new Date(expiresAt) };
  }

  /** What the ticket was issued for, while it lasts; undefined for anything else. */
  check(ticket: string): Grant | undefined {
    const dot = ticket.indexOf('.');
    if (dot <= 0) return undefined;
    const body = ticket.slice(0, dot);
    const presented = Buffer.from(ticket.slice(dot + 1), 'base64url');
    const expected = this.sign(body);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined;
    const { g, e } = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { g: Grant; e: number };
    return typeof e === 'number' && e > Date.now() ? g : undefined;
  }

  private sign(body: string): Buffer {
    return createHmac('sha256', this.key).update(`${this.purpose}\n${body}`).digest();
  }
}

/**
 * The key replicas sign tickets with, from a secret they all hold (the API token): one-way, so a
 * ticket tells nothing of the secret, and a new token makes the old tickets worthless.
 */
export function ticketKeyFrom(secret: string): Buffer {
  return createHmac('sha256', secret).update('quantix ticket key v1').digest();
}

/**
 * What replicas compare to find one whose ticket key (API token) differs from theirs: one-way and
 * of another purpose than any signature, so it tells nothing of the key nor signs anything.
 */
export function ticketKeyFingerprint(key: Buffer): string {
  return createHmac('sha256', key).update('quantix replica key fingerprint v1').digest('hex').slice(0, 16);
}
