import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

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
