import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

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
 * Tickets for callers that cannot send a header (a browser's WebSocket, EventSource or download
 * link): issued to a caller that showed its token, kept only as digests in this replica's
 * memory, and expired after ttlMs. `redeem` spends a ticket at its first presentation, right or
 * wrong; `check` lets it be shown again until it expires (a download resumed with Range).
 */
export class TicketBook<Grant> {
  private readonly tickets = new Map<string, { grant: Grant; expiresAt: number }>();

  constructor(private readonly ttlMs: number) {}

  issue(grant: Grant): { ticket: string; expiresAt: Date } {
    const now = Date.now();
    for (const [digest, entry] of this.tickets) if (entry.expiresAt <= now) this.tickets.delete(digest);
    const ticket = newToken();
    const expiresAt = now + this.ttlMs;
    this.tickets.set(tokenDigest(ticket), { grant, expiresAt });
    return { ticket, expiresAt: new Date(expiresAt) };
  }

  /** What the ticket was issued for, once, before it expires; undefined otherwise. Any ticket shown is spent. */
  redeem(ticket: string): Grant | undefined {
    const digest = tokenDigest(ticket);
    const entry = this.tickets.get(digest);
    this.tickets.delete(digest);
    return entry && entry.expiresAt > Date.now() ? entry.grant : undefined;
  }

  /** What the ticket was issued for, while it lasts, without spending it; undefined otherwise. */
  check(ticket: string): Grant | undefined {
    const entry = this.tickets.get(tokenDigest(ticket));
    return entry && entry.expiresAt > Date.now() ? entry.grant : undefined;
  }
}

/**
 * Tickets any replica can check: the grant and its expiry, signed (HMAC-SHA256) with a key every
 * replica shares — nothing stored, so a ticket minted on one replica opens the door on another
 * (a load balancer sends the fetch anywhere). Tickets of one `purpose` are not good for another.
 * They can be shown again until they expire: for tickets that must be spent once, TicketBook.
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
