/**
 * The database in trouble, with real processes: `quantix serve` on a PostgreSQL server of the
 * test's own, reached through a TCP proxy. The server is restarted (every connection dropped,
 * refused for a moment), and the proxy stops forwarding (a frozen network: nothing refused,
 * nothing answered). Clients get 503 DATABASE_UNAVAILABLE with Retry-After within the
 * configured timeout — never a 500, never a hang — and the API recovers without a restart.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivatePostgres, startPrivatePostgres } from './faults/private-postgres.js';
import { TcpProxy } from './faults/tcp-proxy.js';
import { waitFor } from './harness.js';
import { type Proc, QUANTIX, startProcess, stopProcess, waitForOutput } from './processes.js';

const TOKEN = 'database-faults-token-0123456789';
/** The bound given to `quantix serve --database-timeout`. */
const TIMEOUT_MS = 1_500;

describe('the API when its database fails (real processes)', { timeout: 180_000 }, () => {
  let work: string;
  let postgres: PrivatePostgres;
  let proxy: TcpProxy;
  let serve: Proc;
  let url = '';

  const timed = async (path: string) => {
    const started = Date.now();
    const response = await fetch(`${url}/api/v1${path}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json()) as { error?: { code: string } };
    return { status: response.status, body, ms: Date.now() - started, retryAfter: response.headers.get('retry-after') };
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'quantix-dbfaults-'));
    postgres = await startPrivatePostgres();
    proxy = new TcpProxy(() => ({ host: '127.0.0.1', port: postgres.port }));
    const proxyPort = await proxy.listen();
    const tokenFile = join(work, 'token');
    writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    serve = startProcess(
      [
        QUANTIX,
        'serve',
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        join(work, 'data'),
        '--api-token-file',
        tokenFile,
        '--database-url',
        `postgres://postgres@127.0.0.1:${proxyPort}/postgres`,
        '--database-timeout',
        String(TIMEOUT_MS),
      ],
      {},
      work,
    );
    [, url = ''] = await waitForOutput(serve, /"url":"(http:\/\/[^"]+)"/);
    expect((await timed('/pools')).status).toBe(200);
  });

  afterAll(async () => {
    await stopProcess(serve);
    await proxy?.close();
    await postgres?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('answers 503 within its timeout while the database is frozen, and recovers when it thaws', async () => {
    proxy.freeze();
    try {
      for (const path of ['/pools', '/images', '/healthz']) {
        const answer = await timed(path);
        expect(answer, path).toMatchObject({ status: 503, body: { error: { code: 'DATABASE_UNAVAILABLE' } } });
        expect(answer.retryAfter).toBe('5');
        // Waiting for a connection, connecting and the statement are each bounded; room for a busy machine.
        expect(answer.ms).toBeLessThan(TIMEOUT_MS * 4 + 3_000);
        console.log(`frozen database: GET ${path} → ${answer.status} ${answer.body.error?.code} in ${answer.ms} ms`);
      }
    } finally {
      proxy.thaw();
    }
    await waitFor(async () => (await timed('/pools')).status === 200, 'the API to answer again', 30_000);
    // And keeps answering: no connection left broken in the pool.
    for (let i = 0; i < 20; i++) expect((await timed('/pools')).status).toBe(200);
  });

  it('answers 503, never 500, while the database restarts, and recovers by itself', async () => {
    const statuses = new Set<number>();
    const restart = postgres.restart();
    let done = false;
    void restart.finally(() => {
      done = true;
    });
    while (!done) {
      const answer = await timed('/pools');
      statuses.add(answer.status);
      if (answer.status !== 200) expect(answer.body.error?.code).toBe('DATABASE_UNAVAILABLE');
    }
    await restart;
    await waitFor(async () => (await timed('/pools')).status === 200, 'the API to answer after the restart', 30_000);
    for (let i = 0; i < 20; i++) expect((await timed('/pools')).status).toBe(200);
    console.log(`during the restart: ${[...statuses].sort().join(', ')}`);
    expect([...statuses].filter((s) => s !== 200 && s !== 503)).toEqual([]);
  });
});
