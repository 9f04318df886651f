import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { SignedTickets, ticketKeyFrom } from './tokens.js';

describe('signed tickets', () => {
  const key = ticketKeyFrom('the API token replicas share');

  it('checks on any holder of the key what was issued, for as long as it lasts', () => {
    const minted = new SignedTickets<{ imageId: string }>(key, 'image-download', 60_000).issue({ imageId: 'img-1' });
    expect(minted.expiresAt.getTime()).toBeGreaterThan(Date.now() + 59_000);
    // Another replica: another instance, the same key.
    const elsewhere = new SignedTickets<{ imageId: string }>(
      ticketKeyFrom('the API token replicas share'),
      'image-download',
      60_000,
    );
    expect(elsewhere.check(minted.ticket)).toEqual({ imageId: 'img-1' });
    expect(elsewhere.check(minted.ticket)).toEqual({ imageId: 'img-1' }); // shown again: still good
  });

  it('refuses a ticket signed with another key, for another purpose, altered, expired or malformed', async () => {
    const tickets = new SignedTickets<{ imageId: string }>(key, 'image-download', 60_000);
    const { ticket } = tickets.issue({ imageId: 'img-1' });
    expect(new SignedTickets(ticketKeyFrom('another token'), 'image-download', 60_000).check(ticket)).toBeUndefined();
    expect(new SignedTickets(key, 'image-copy', 60_000).check(ticket)).toBeUndefined();
    const [body, signature] = ticket.split('.') as [string, string];
    const altered = Buffer.from(
      Buffer.from(body, 'base64url').toString('utf8').replace('img-1', 'img-2'),
      'utf8',
    ).toString('base64url');
    expect(tickets.check(`${altered}.${signature}`)).toBeUndefined();
    expect(tickets.check(`${body}.${signature.slice(1)}`)).toBeUndefined();
    for (const junk of ['', '.', 'no-dot', `.${signature}`, `${body}.`, `${body}.${signature}.x`]) {
      expect(tickets.check(junk)).toBeUndefined();
    }
    const brief = new SignedTickets<{ imageId: string }>(key, 'image-download', 20);
    const short = brief.issue({ imageId: 'img-1' }).ticket;
    expect(brief.check(short)).toEqual({ imageId: 'img-1' });
    await sleep(40);
    expect(brief.check(short)).toBeUndefined();
  });
});
