/**
 * The node agent's side of a link that comes and goes: downloads a control plane can lose and
 * find again (attach to a running one, answer a finished one from its result, report both in
 * hello), pools checked again between pushes with only changes reported, and messages kept
 * within the protocol's limits. Everything real: storage-local on real directories, the
 * images-cloud fetcher against a real HTTP server on loopback (which counts every request).
 *
 * Pool roots are under /srv, one of the default allowed pool roots; the agent allows the test's.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type NodeMessage,
  type PoolContentType,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  type ProtocolPool,
  parseNodeMessage,
} from '@quantix/core';
import { mountSmallFilesystem, waitFor } from '@quantix/core/testing';
import { HttpImageFetcher } from '@quantix/images-cloud';
import { type ImageServer, makeVmdkDescriptorNaming, sha256, startImageServer } from '@quantix/images-cloud/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { localPools } from '../__fixtures__/local-pools.js';
import { NodeAgent } from './node-agent.js';

const MiB = 1024 * 1024;

describe('NodeAgent across lost links: downloads found again, pools re-checked, limits kept', () => {
  let root: string;
  let server: ImageServer;
  let agent: NodeAgent;
  let data: Buffer;
  const sent: NodeMessage[] = [];
  const send = (message: NodeMessage) => void sent.push(message);

  const pool = (id: string, config: Record<string, unknown>): ProtocolPool => ({
    id,
    name: id,
    type: 'local',
    config,
    contentTypes: ['iso', 'images'],
    shared: false,
  });
  /** Asks `scanning` to scan a pool, its messages sent into `messages`: the scan.result among them. */
  const scanResult = async (scanning: NodeAgent, messages: NodeMessage[], poolId: string, content: PoolContentType) => {
    const from = messages.length;
    await scanning.handle(
      {
        v: PROTOCOL_VERSION,
        type: 'request',
        requestId: `scan-${from}`,
        request: { op: 'pool.scan', poolId, content },
      },
      (m: NodeMessage) => void messages.push(m),
    );
    const result = messages.slice(from).find((m) => m.type === 'scan.result');
    if (result?.type !== 'scan.result') throw new Error(`no scan result for ${poolId}`);
    return result;
  };
  /** The pool the downloads go to, in every push. */
  const imagesPool = () => pool('images', { path: join(root, 'images'), create: true });
  let generation = 0;
  const push = (pools: ProtocolPool[]) =>
    agent.handle({ v: PROTOCOL_VERSION, type: 'pools.desired', generation: ++generation, pools }, send);
  let nextId = 0;
  const request = async (body: Record<string, unknown>) => {
    const requestId = `r${++nextId}`;
    await agent.handle({ v: PROTOCOL_VERSION, type: 'request', requestId, request: body }, send);
    const response = sent.find((m) => m.type === 'response' && m.requestId === requestId);
    if (response?.type !== 'response') throw new Error(`no response to ${requestId}`);
    return response;
  };
  const download = (imageId: string, relPath = 'cloud/disk.img') => ({
    op: 'image.download',
    imageId,
    poolId: 'images',
    relPath,
    sourceUrl: `${server.url}/disk.img`,
    checksum: { algorithm: 'sha256', value: sha256(data) },
    checksumUrl: null,
  });
  const fileGets = () => server.requestsFor('/disk.img').filter((r) => r.method === 'GET').length;

  beforeAll(async () => {
    await mkdir('/srv', { recursive: true });
    root = await mkdtemp('/srv/quantix-agent-links-');
    server = await startImageServer();
    data = randomBytes(2 * MiB);
    server.setFile('/disk.img', data);
    agent = new NodeAgent({
      nodeId: 'node-1',
      ...localPools(root),
      fetchers: [new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } })],
      progressIntervalMs: 50,
      poolRecheckIntervalMs: 0,
    });
    await push([imagesPool()]);
  });

  afterAll(async () => {
    await agent?.close();
    await server?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  beforeEach(() => {
    server.reset();
  });

  it('attaches a second image.download to the one running: one fetch, both answered with its result', async () => {
    server.behaviour.bytesPerSecond = 2 * MiB; // about a second
    const first = request(download('img-a'));
    await waitFor('the download to be under way', () =>
      agent.downloadsInHand().some((d) => d.imageId === 'img-a' && (d.bytesDone ?? 0) > 0),
    );
    // What a node says in its hello when it reconnects now.
    const hello = agent.hello({ hostname: 'hv-1', agentVersion: 'test' });
    expect(hello.downloads).toEqual([
      expect.objectContaining({ imageId: 'img-a', poolId: 'images', relPath: 'cloud/disk.img', state: 'running' }),
    ]);
    // A control plane that restarted asks again: the same download answers both.
    const second = request(download('img-a'));
    const [a, b] = await Promise.all([first, second]);
    expect(a.error).toBeUndefined();
    expect(b.error).toBeUndefined();
    expect(b.result).toEqual(a.result);
    expect(a.result).toMatchObject({ sizeBytes: data.length, checksum: { algorithm: 'sha256', value: sha256(data) } });
    expect(fileGets()).toBe(1);
    expect(agent.hello({ hostname: 'hv-1', agentVersion: 'test' }).downloads).toEqual([
      { imageId: 'img-a', poolId: 'images', relPath: 'cloud/disk.img', state: 'done', result: a.result },
    ]);
  });

  it('answers a download that finished from its result, without fetching again, until its file is removed', async () => {
    const again = await request(download('img-a'));
    expect(again.error).toBeUndefined();
    expect(again.result).toMatchObject({ sizeBytes: data.length, bytesTransferred: 0 });
    expect(fileGets()).toBe(0);

    expect((await request({ op: 'image.remove', poolId: 'images', relPath: 'cloud/disk.img' })).error).toBeUndefined();
    expect(agent.downloadsInHand()).toEqual([]);
    const fetched = await request(download('img-a'));
    expect(fetched.result).toMatchObject({ sizeBytes: data.length, bytesTransferred: data.length });
    expect(fileGets()).toBe(1);
  });

  it('refuses the same image into another place while it runs (IN_USE)', async () => {
    server.behaviour.bytesPerSecond = 2 * MiB;
    const running = request(download('img-b', 'cloud/b.img'));
    await waitFor('the download to start', () => agent.downloadsInHand().some((d) => d.imageId === 'img-b'));
    const elsewhere = await request(download('img-b', 'cloud/elsewhere.img'));
    expect(elsewhere.error?.code).toBe('IN_USE');
    expect((await running).error).toBeUndefined();
  });

  it('checks its pools again and reports only those that changed', async () => {
    // On a file system of their own: what other tests write beside them cannot move their free space.
    const quiet = mountSmallFilesystem('8m', { under: root });
    try {
      const here = join(quiet.path, 'here');
      const later = join(quiet.path, 'later');
      await mkdir(here);
      await push([imagesPool(), pool('here', { path: here }), pool('later', { path: later })]);
      const full = [...sent].reverse().find((m) => m.type === 'pools.state');
      expect(full?.type === 'pools.state' && full.pools.map((p) => [p.poolId, p.status])).toEqual([
        ['images', 'active'],
        ['here', 'active'],
        ['later', 'unavailable'],
      ]);
      const from = sent.length;
      expect(await agent.recheckPools()).toEqual([]);
      expect(sent.length).toBe(from); // nothing changed: nothing sent

      await mkdir(later); // the directory (a mount, on NFS) appears: no reconnect needed
      const appeared = await agent.recheckPools();
      expect(appeared.map((p) => [p.poolId, p.status])).toEqual([['later', 'active']]);
      expect(sent.slice(from)).toEqual([{ v: PROTOCOL_VERSION, type: 'pools.state', generation, pools: appeared }]);

      await rm(here, { recursive: true });
      const vanished = await agent.recheckPools();
      expect(vanished.map((p) => [p.poolId, p.status])).toEqual([['here', 'unavailable']]);
      expect(await agent.recheckPools()).toEqual([]);
    } finally {
      await push([imagesPool()]);
      quiet.unmount();
    }
  });

  it('reports an active pool again once its free space has moved by 1% of its size, not for every byte', async () => {
    // A real 64 MiB file system: 1% is about 655 KiB.
    const small = mountSmallFilesystem('64m', { under: root });
    try {
      await push([pool('filling', { path: small.path })]);
      const first = [...sent].reverse().find((m) => m.type === 'pools.state');
      const before = first?.type === 'pools.state' ? first.pools.find((p) => p.poolId === 'filling') : undefined;
      expect(before).toMatchObject({ poolId: 'filling', status: 'active', capacityBytes: 64 * MiB });

      await writeFile(join(small.path, 'crumb'), randomBytes(64 * 1024));
      expect(await agent.recheckPools()).toEqual([]); // 64 KiB: not worth a report

      await writeFile(join(small.path, 'disk.img'), randomBytes(4 * MiB));
      const filled = await agent.recheckPools();
      expect(filled).toEqual([
        expect.objectContaining({ poolId: 'filling', status: 'active', capacityBytes: 64 * MiB }),
      ]);
      const taken = (before?.availableBytes ?? 0) - (filled[0]?.availableBytes ?? 0);
      expect(taken).toBeGreaterThanOrEqual(4 * MiB);
      expect(taken).toBeLessThan(5 * MiB);
      expect(await agent.recheckPools()).toEqual([]);

      await rm(join(small.path, 'disk.img'));
      // Back to what it was, but for the crumb.
      expect(await agent.recheckPools()).toEqual([
        expect.objectContaining({ poolId: 'filling', availableBytes: (before?.availableBytes ?? 0) - 64 * 1024 }),
      ]);
    } finally {
      await push([imagesPool()]);
      small.unmount();
    }
  });

  it('checks on its interval without being asked', async () => {
    const watched = join(root, 'watched');
    const own: NodeMessage[] = [];
    const ticking = new NodeAgent({
      nodeId: 'node-2',
      ...localPools(root),
      poolRecheckIntervalMs: 100,
    });
    try {
      await ticking.handle(
        { v: PROTOCOL_VERSION, type: 'pools.desired', generation: 3, pools: [pool('watched', { path: watched })] },
        (m) => void own.push(m),
      );
      expect(own).toHaveLength(1);
      await mkdir(watched);
      await waitFor('the interval re-check to report', () => own.length === 2);
      expect(own[1]).toMatchObject({
        type: 'pools.state',
        generation: 3,
        pools: [{ poolId: 'watched', status: 'active' }],
      });
    } finally {
      await ticking.close();
    }
  });

  it('cuts a reason longer than 1 KiB, so that its report is still valid', async () => {
    const deep = join(root, ...Array.from({ length: 12 }, (_, i) => `${i}-${'d'.repeat(200)}`));
    await push([pool('deep', { path: deep })]);
    const state = [...sent].reverse().find((m) => m.type === 'pools.state');
    const report = state?.type === 'pools.state' ? state.pools[0] : undefined;
    expect(report?.status).toBe('unavailable');
    expect(report?.reason?.length).toBeLessThanOrEqual(PROTOCOL_LIMITS.reason);
    expect(() => parseNodeMessage(JSON.stringify(state))).not.toThrow();
  });

  it('cuts what an inspector read from a file to the protocol’s limits, so that the scan is never refused', async () => {
    const oddDir = join(root, 'odd');
    await mkdir(oddDir);
    await writeFile(join(oddDir, 'odd.iso'), 'x');
    const odd: NodeMessage[] = [];
    const inspecting = new NodeAgent({
      nodeId: 'node-3',
      ...localPools(root),
      poolRecheckIntervalMs: 0,
      inspector: {
        inspect: async () => ({
          name: 'n'.repeat(1000),
          os: { family: 'linux', distribution: 'd'.repeat(300), version: null, arch: 'x86_64' },
          labels: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`label-${i}`, 'v'.repeat(2000)])),
        }),
      },
    });
    try {
      const sendOdd = (m: NodeMessage) => void odd.push(m);
      await inspecting.handle(
        { v: PROTOCOL_VERSION, type: 'pools.desired', generation: 1, pools: [pool('odd', { path: oddDir })] },
        sendOdd,
      );
      await inspecting.handle(
        {
          v: PROTOCOL_VERSION,
          type: 'request',
          requestId: 'scan',
          request: { op: 'pool.scan', poolId: 'odd', content: 'iso' },
        },
        sendOdd,
      );
      const result = odd.find((m) => m.type === 'scan.result');
      const parsed = parseNodeMessage(JSON.stringify(result));
      const file = parsed.type === 'scan.result' ? parsed.files[0] : undefined;
      expect(file?.name).toHaveLength(PROTOCOL_LIMITS.name);
      expect(file?.os?.distribution).toHaveLength(PROTOCOL_LIMITS.short);
      expect(Object.keys(file?.labels ?? {})).toHaveLength(PROTOCOL_LIMITS.labels);
    } finally {
      await inspecting.close();
    }
  });

  it('reports a file whose modification time the protocol cannot carry as skipped, and the rest of the scan is sent', async () => {
    // ext4 stops at year 2446; tmpfs keeps a file touched to year 10,000 (`touch -d @253402300800`).
    const timeDir = join(root, 'far-future');
    await mkdir(timeDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'quantix-test', timeDir]);
    try {
      await writeFile(join(timeDir, 'far.iso'), 'x');
      await writeFile(join(timeDir, 'now.iso'), 'y');
      await utimes(join(timeDir, 'far.iso'), new Date(), new Date(Date.UTC(10_000, 0, 1)));
      expect((await stat(join(timeDir, 'far.iso'))).mtime.getUTCFullYear()).toBe(10_000);
      await agent.handle(
        {
          v: PROTOCOL_VERSION,
          type: 'pools.desired',
          generation: ++generation,
          pools: [pool('far', { path: timeDir })],
        },
        send,
      );
      const answer = await request({ op: 'pool.scan', poolId: 'far', content: 'iso' });
      expect(answer.error).toBeUndefined();
      const result = sent.find((m) => m.type === 'scan.result' && m.poolId === 'far');
      // What the control plane reads: a valid message, the file it can store, the other not looked at.
      const parsed = parseNodeMessage(JSON.stringify(result));
      expect(parsed.type === 'scan.result' && parsed.files.map((f) => f.relPath)).toEqual(['now.iso']);
      expect(parsed.type === 'scan.result' && parsed.skipped).toEqual([
        { relPath: 'far.iso', reason: 'modification time +010000-01-01T00:00:00.000Z is out of range' },
      ]);
    } finally {
      execFileSync('umount', ['--lazy', timeDir]);
    }
  });

  it('sends an unchanged file as the last scan did without reading it, and reads again one it failed to read', async () => {
    const shelf = join(root, 'shelf');
    await mkdir(shelf);
    await writeFile(join(shelf, 'steady.iso'), 'x');
    await writeFile(join(shelf, 'flaky.iso'), 'x');
    const inspected: string[] = [];
    let flakyFails = true;
    const messages: NodeMessage[] = [];
    const scanning = new NodeAgent({
      nodeId: 'node-4',
      ...localPools(root),
      poolRecheckIntervalMs: 0,
      inspector: {
        inspect: async ({ relPath }) => {
          inspected.push(relPath);
          // A read that fails for a passing reason (not "this is no ISO"): the file is sent unnamed.
          if (relPath === 'flaky.iso' && flakyFails) throw new Error('EIO: i/o error, read');
          return { name: `named ${relPath}` };
        },
      },
    });
    const sendTo = (m: NodeMessage) => void messages.push(m);
    const scanFiles = async () => (await scanResult(scanning, messages, 'shelf', 'iso')).files;
    try {
      await scanning.handle(
        { v: PROTOCOL_VERSION, type: 'pools.desired', generation: 1, pools: [pool('shelf', { path: shelf })] },
        sendTo,
      );
      const first = await scanFiles();
      expect(first.map((f) => [f.relPath, f.name])).toEqual([
        ['flaky.iso', undefined],
        ['steady.iso', 'named steady.iso'],
      ]);
      inspected.length = 0;
      flakyFails = false;
      const second = await scanFiles();
      expect(inspected).toEqual(['flaky.iso']);
      expect(second).toEqual([{ ...first[0], name: 'named flaky.iso' }, first[1]]);
      inspected.length = 0;
      expect(await scanFiles()).toEqual(second);
      expect(inspected).toEqual([]);
    } finally {
      await scanning.close();
    }
  });

  it("does not offer a disk image that names other files: a scan says why, and a VM's own disks are not looked at", async () => {
    // Images made by qemu-img (qemu-utils), as a user could copy them into a pool.
    const rack = join(root, 'rack');
    await mkdir(join(rack, 'vms', 'web'), { recursive: true });
    const secret = join(root, 'host-secret');
    await writeFile(secret, 'root:secret-hash');
    const qemuImg = (...args: string[]) => execFileSync('qemu-img', ['create', '-q', ...args]);
    qemuImg('-f', 'qcow2', join(rack, 'plain.qcow2'), '1M');
    qemuImg('-f', 'vmdk', join(rack, 'sparse.img'), '1M'); // a sparse VMDK is its own one extent
    qemuImg('-f', 'qcow2', '-F', 'raw', '-b', secret, join(rack, 'backed.qcow2'), '1M');
    await makeVmdkDescriptorNaming(join(rack, 'passwd.img'), '/etc/passwd');
    // A VM's overlay names its base: it is the VM's disk, not an image of the pool.
    qemuImg('-f', 'qcow2', '-F', 'qcow2', '-b', join(rack, 'plain.qcow2'), join(rack, 'vms', 'web', 'disk0.qcow2'));
    const messages: NodeMessage[] = [];
    const scanning = new NodeAgent({ nodeId: 'node-5', ...localPools(root), poolRecheckIntervalMs: 0 });
    const sendTo = (m: NodeMessage) => void messages.push(m);
    const scan = () => scanResult(scanning, messages, 'rack', 'images');
    try {
      await scanning.handle(
        { v: PROTOCOL_VERSION, type: 'pools.desired', generation: 1, pools: [pool('rack', { path: rack })] },
        sendTo,
      );
      const first = await scan();
      expect(first.files.map((f) => f.relPath).filter((relPath) => !relPath.startsWith('vms/'))).toEqual([
        'plain.qcow2',
        'sparse.img',
      ]);
      expect(first.invalid).toEqual([
        {
          relPath: 'backed.qcow2',
          code: 'IMAGE_UNSAFE',
          message: `backed.qcow2 is a qcow2 that names a backing file (${secret}); an image must stand alone`,
        },
        {
          relPath: 'passwd.img',
          code: 'IMAGE_UNSAFE',
          message: expect.stringContaining('passwd.img is a VMDK descriptor'),
        },
      ]);
      // Unchanged since: said again without reading.
      const second = await scan();
      expect(second.invalid).toEqual(first.invalid);
      // Made to stand alone (rebased onto nothing): offered.
      execFileSync('qemu-img', ['rebase', '-u', '-b', '', join(rack, 'backed.qcow2')]);
      const third = await scan();
      expect(third.invalid?.map((f) => f.relPath)).toEqual(['passwd.img']);
      expect(third.files.map((f) => f.relPath)).toContain('backed.qcow2');
      // Many new files at once, more than the scan reads ahead: each is judged by its own header.
      await mkdir(join(rack, 'more'));
      for (let i = 0; i < 20; i++) {
        const source = join(rack, i === 13 ? 'passwd.img' : 'plain.qcow2');
        await copyFile(source, join(rack, 'more', `copy-${String(i).padStart(2, '0')}.img`));
      }
      const fourth = await scan();
      expect(fourth.invalid?.map((f) => f.relPath).sort()).toEqual(['more/copy-13.img', 'passwd.img']);
      const copies = fourth.files.map((f) => f.relPath).filter((relPath) => relPath.startsWith('more/'));
      expect(copies).toHaveLength(19);
      expect(copies).not.toContain('more/copy-13.img');
    } finally {
      await scanning.close();
    }
  });

  it('records a disk image with the format its header shows, whatever its name; one named .qcow2 that is not one is left out', async () => {
    const shelf = join(root, 'by-header');
    await mkdir(shelf);
    const qemuImg = (...args: string[]) => execFileSync('qemu-img', ['create', '-q', ...args]);
    // Cloud images as mirrors name them: Ubuntu's .img is a qcow2; a raw disk is plain bytes.
    qemuImg('-f', 'qcow2', join(shelf, 'jammy-server-cloudimg-amd64.img'), '1M');
    qemuImg('-f', 'raw', join(shelf, 'appliance.img'), '1M');
    qemuImg('-f', 'vmdk', join(shelf, 'exported.img'), '1M');
    await writeFile(join(shelf, 'half-copied.qcow2'), 'the first bytes of something');
    const messages: NodeMessage[] = [];
    const scanning = new NodeAgent({ nodeId: 'node-6', ...localPools(root), poolRecheckIntervalMs: 0 });
    try {
      await scanning.handle(
        { v: PROTOCOL_VERSION, type: 'pools.desired', generation: 1, pools: [pool('by-header', { path: shelf })] },
        (m) => void messages.push(m),
      );
      const scanned = await scanResult(scanning, messages, 'by-header', 'images');
      expect(Object.fromEntries(scanned.files.map((f) => [f.relPath, f.format]))).toEqual({
        'appliance.img': 'raw',
        'exported.img': 'vmdk',
        'jammy-server-cloudimg-amd64.img': 'qcow2',
      });
      expect(scanned.invalid).toEqual([
        {
          relPath: 'half-copied.qcow2',
          code: 'IMAGE_INVALID',
          message: 'half-copied.qcow2 is named .qcow2 but is not a qcow2 image',
        },
      ]);
    } finally {
      await scanning.close();
    }
  });

  it("sends a scan larger than the control plane's frame limit in numbered parts, each within it", async () => {
    const isoDir = join(root, 'isos');
    await mkdir(isoDir);
    const names = Array.from(
      { length: 40 },
      (_, i) => `installer-${String(i).padStart(2, '0')}-${'n'.repeat(120)}.iso`,
    );
    for (const name of names) await writeFile(join(isoDir, name), 'x');
    // Directories the scan does not enter travel in the parts too: one left out would turn its rows missing.
    const shelves = Array.from({ length: 30 }, (_, i) => `shelf-${String(i).padStart(2, '0')}-${'s'.repeat(120)}`);
    for (const shelf of shelves) await mkdir(join(isoDir, shelf));
    await push([pool('isos', { path: isoDir, maxDepth: 0 })]);

    // An older control plane states no limit: one message, as before.
    await agent.handle(
      { v: PROTOCOL_VERSION, type: 'welcome', nodeId: 'node-1', serverTime: new Date().toISOString() },
      send,
    );
    let from = sent.length;
    expect((await request({ op: 'pool.scan', poolId: 'isos', content: 'iso' })).error).toBeUndefined();
    const whole = sent.slice(from).filter((m) => m.type === 'scan.result');
    expect(whole).toHaveLength(1);
    expect(whole[0]).not.toHaveProperty('scanId');

    const limit = 4096;
    await agent.handle(
      {
        v: PROTOCOL_VERSION,
        type: 'welcome',
        nodeId: 'node-1',
        serverTime: new Date().toISOString(),
        maxMessageBytes: limit,
      },
      send,
    );
    from = sent.length;
    expect((await request({ op: 'pool.scan', poolId: 'isos', content: 'iso' })).error).toBeUndefined();
    const parts = sent.slice(from).filter((m) => m.type === 'scan.result');
    expect(parts.length).toBeGreaterThan(2);
    const scanIds = new Set(parts.map((p) => (p.type === 'scan.result' ? p.scanId : undefined)));
    expect(scanIds.size).toBe(1);
    expect(parts.map((p) => (p.type === 'scan.result' ? [p.part, p.final] : null))).toEqual(
      parts.map((_, i) => [i, i === parts.length - 1]),
    );
    for (const part of parts) {
      expect(Buffer.byteLength(JSON.stringify(part))).toBeLessThanOrEqual(limit);
      expect(() => parseNodeMessage(JSON.stringify(part))).not.toThrow();
    }
    const files = parts.flatMap((p) => (p.type === 'scan.result' ? p.files.map((f) => f.relPath) : []));
    expect(files.sort()).toEqual([...names].sort());
    const skipped = parts.flatMap((p) => (p.type === 'scan.result' ? (p.skipped ?? []).map((k) => k.relPath) : []));
    expect(skipped.sort()).toEqual([...shelves].sort());
  });
});
