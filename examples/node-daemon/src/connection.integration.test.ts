/**
 * A node given several control-plane replicas (several --url values, or one name with several
 * addresses) reaches one that is alive and moves when it dies. Replicas are real WebSocket
 * servers that answer hellos (fixtures/replica.ts); host names are resolved by the system
 * resolver, from an /etc/hosts of the test's own in a private mount namespace.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@quantix/core';
import { waitFor } from '@quantix/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type Replica, startReplica } from './__fixtures__/replica.js';
import { ControlPlaneConnection } from './connection.js';

const here = dirname(fileURLToPath(import.meta.url));
const silent = createLogger({ level: 'silent' });

/** A port nothing listens on: bound, then released. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function connect(nodeId: string, urls: string[]): ControlPlaneConnection {
  const connection = new ControlPlaneConnection({
    urls,
    nodeId,
    token: 'test-token',
    hostname: nodeId,
    agentVersion: 'test',
    logger: silent,
    initialBackoffMs: 50,
    maxBackoffMs: 400,
    handler: { handle() {} },
  });
  connection.start();
  return connection;
}

describe('a node with several control-plane replicas', () => {
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('skips a dead replica, and moves to a live one when its own dies', async () => {
    const a = await startReplica();
    const b = await startReplica();
    cleanup.push(
      () => a.kill(),
      () => b.kill(),
    );
    const dead = `http://127.0.0.1:${await deadPort()}`;
    const connection = connect('n1', [dead, a.url, b.url]);
    cleanup.push(() => connection.close());

    const first = await waitFor('a first connection', () => connection.endpoint);
    const [held, other] = first.url.port === String(a.port) ? [a, b] : [b, a];
    await waitFor('the node’s hello', () => held.hellos.length === 1);
    expect(held.hellos).toEqual(['n1']);

    const killedAt = Date.now();
    await held.kill();
    await waitFor('the node’s hello on the other replica', () => other.hellos.length === 1);
    expect(other.hellos).toEqual(['n1']);
    expect(connection.endpoint?.url.port).toBe(String(other.port));
    // Two dials at most (the dead URL, then the live one), each after a jittered delay ≤ 400 ms.
    expect(Date.now() - killedAt).toBeLessThan(5_000);
  });

  it('comes back when every replica was down for a while', async () => {
    const replica = await startReplica();
    cleanup.push(() => replica.kill());
    replica.setDown(true);
    const connection = connect('n1', [replica.url]);
    cleanup.push(() => connection.close());
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(connection.connected).toBe(false);
    expect(replica.hellos).toEqual([]);
    replica.setDown(false);
    await waitFor('the node’s hello', () => replica.hellos.length === 1);
    expect(replica.hellos).toEqual(['n1']);
  });

  it('spreads nodes over the replicas it is given', async () => {
    const replicas = [await startReplica(), await startReplica()];
    cleanup.push(...replicas.map((replica) => () => replica.kill()));
    const urls = replicas.map((replica) => replica.url);
    const connections = Array.from({ length: 40 }, (_, i) => connect(`n${i}`, urls));
    cleanup.push(() => Promise.all(connections.map((connection) => connection.close())));
    await waitFor('every node connected', () => connections.every((connection) => connection.connected));
    // Each node starts at a random replica: all 40 on one has probability 2^-39.
    expect(replicas[0]?.connected()).toBeGreaterThan(0);
    expect(replicas[1]?.connected()).toBeGreaterThan(0);
    expect((replicas[0]?.connected() ?? 0) + (replicas[1]?.connected() ?? 0)).toBe(40);
  });

  it("spreads a dead replica's nodes over the replicas left, not all onto the one listed after it", async () => {
    const replicas = [await startReplica(), await startReplica(), await startReplica()];
    cleanup.push(...replicas.map((replica) => () => replica.kill()));
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const connections = Array.from({ length: 60 }, (_, i) => connect(`n${i}`, [a.url, b.url, c.url]));
    cleanup.push(() => Promise.all(connections.map((connection) => connection.close())));
    await waitFor('every node connected', () => connections.every((connection) => connection.connected));
    const onC = connections.filter((connection) => connection.endpoint?.url.port === String(c.port)).length;
    const before = { a: a.connected(), b: b.connected() };
    expect(onC).toBeGreaterThan(5);

    await c.kill();
    await waitFor('every node on A or B', () => a.connected() + b.connected() === 60);
    // About half of C's nodes each way; all on one of them has probability 2^(1-onC).
    expect(a.connected() - before.a).toBeGreaterThan(0);
    expect(b.connected() - before.b).toBeGreaterThan(0);
  });

  it('treats one host name with several addresses as several replicas', async () => {
    // The same port on two loopback addresses: one name, two replicas.
    const first = await startReplica('127.0.0.2');
    const second = await startReplica('127.0.0.3', first.port);
    const replicas: Record<string, Replica> = { '127.0.0.2': first, '127.0.0.3': second };
    cleanup.push(
      () => first.kill(),
      () => second.kill(),
    );
    const dir = await mkdtemp(join(tmpdir(), 'quantix-hosts-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const hosts = join(dir, 'hosts');
    await writeFile(hosts, '127.0.0.1 localhost\n127.0.0.2 cp.quantix.test\n127.0.0.3 cp.quantix.test\n');

    // The script is constant; the paths reach it as arguments, never as shell text.
    const child: ChildProcess = spawn(
      'unshare',
      [
        '--mount',
        'sh',
        '-c',
        'mount --bind "$1" /etc/hosts && shift && exec "$@"',
        'sh',
        hosts,
        process.execPath,
        '--import',
        'tsx',
        join(here, '__fixtures__', 'dial-child.ts'),
        'n-dns',
        `http://cp.quantix.test:${first.port}`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanup.push(() => child.kill('SIGKILL'));
    const connections: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      connections.push((JSON.parse(line) as { connected: string }).connected);
    });

    const firstAddress = await waitFor('a first connection', () => connections[0]);
    const held = replicas[firstAddress];
    const otherAddress = firstAddress === '127.0.0.2' ? '127.0.0.3' : '127.0.0.2';
    expect(held?.hellos).toEqual(['n-dns']);
    await held?.kill();
    await waitFor('the node on the other address', () => connections[1]);
    expect(connections).toEqual([firstAddress, otherAddress]);
    expect(replicas[otherAddress]?.hellos).toEqual(['n-dns']);
  });
});
