/**
 * ISO scans on the path that runs: the control plane asks (hub.request pool.scan, as
 * ImageService.rescan and the scan after a pool sync do), a real NodeAgent lists a real pool
 * directory through @quantix/storage-local and reads each ISO with @quantix/images-iso, sends
 * scan.result, and the hub ingests it into PostgreSQL or PGlite. Only the WebSocket is replaced
 * by an in-process pipe (see __fixtures__/in-process-node.ts).
 *
 * These are the assertions of images-iso's scanner.integration.test.ts (the scanner that never
 * ran, now deleted), moved onto this path, plus unreadable and refused directories.
 */
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPoolRootPolicy,
  createQuantix,
  ErrorCode,
  type Image,
  imageIdForLocation,
  type NodeMessage,
  type Quantix,
  type QuantixEvents,
  type Repositories,
  type StoragePool,
} from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import { createIsoInspector, ImagesIsoErrorCode, ISO_LABELS } from '@quantix/images-iso';
import { buildIso, REAL_MEDIA, requireIsoTools } from '@quantix/images-iso/testing';
import { NodeAgent } from '@quantix/node-runtime';
import { LocalStorageBackend, localPoolType, storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type InProcessLink, inProcessLink } from '../__fixtures__/in-process-node.js';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';

/** How long a test waits for the hub to have written what the node sent. */
const WAIT = { timeout: 30_000, interval: 20 };

/** The unprivileged user the "unreadable directory" scans run as: root reads every directory. */
const NOBODY = 65534;

/** Runs `work` with the effective user and group `id` (the process is root), then as root again. */
async function asUser<T>(id: number, work: () => Promise<T>): Promise<T> {
  if (!process.seteuid || !process.setegid) throw new Error('changing the effective user needs a POSIX system');
  process.setegid(id);
  process.seteuid(id);
  try {
    return await work();
  } finally {
    process.seteuid(0);
    process.setegid(0);
  }
}

let base: string;
/** Ready-made ISOs, copied into pools as tests need them. */
const made: Record<string, string> = {};

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-scan-path-'));
  // Traversable by the unprivileged user some scans run as.
  await chmod(base, 0o755);
  const stock = join(base, 'stock');
  await mkdir(stock);
  made.ubuntu = await buildIso(join(stock, 'ubuntu.iso'), REAL_MEDIA.ubuntuServer2404);
  made.debian = await buildIso(join(stock, 'debian.iso'), REAL_MEDIA.debian12);
  made.windows = await buildIso(join(stock, 'windows.iso'), REAL_MEDIA.windows11);
  made.rocky = await buildIso(join(stock, 'rocky.iso'), REAL_MEDIA.rocky94);
  made.efi = await buildIso(join(stock, 'efi.iso'), { volumeId: 'Fedora-S-dvd-aarch64-41', boot: 'uefi' });
  // A volume id anyone can write: terminal escapes that clear the screen and retitle the window.
  made.escapes = await buildIso(join(stock, 'escapes.iso'), { volumeId: 'EVIL\x1b[2J\x1b]0;pwned\x07X' });
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe.each(TEST_DATABASE_CLIENTS)('ISO scans, node agent to database, on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;
  let repos: Repositories;
  let root: string;
  let pool: StoragePool;
  let nodeId: string;
  let agent: NodeAgent;
  let link: InProcessLink;
  /** Everything the node sent, in order. */
  let fromNode: NodeMessage[];
  let counter = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config, plugins: [storageLocalPlugin] });
    repos = quantix.repositories;
    cp = createControlPlane({ quantix });
    await cp.start();
  });

  afterAll(async () => {
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  const waitFor = async (what: string, check: () => boolean) => {
    const until = Date.now() + 30_000;
    while (!check()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  /** Runs before the node's next scan.delta is sent, once (a write that races the delta). */
  let beforeDelta: (() => Promise<unknown>) | undefined;

  /**
   * Connects a node agent holding the pool — a fresh one (a started or restarted daemon), or the
   * one given (a reconnect, its memory kept) — and waits for the scan that follows its sync.
   */
  const connect = async (existing?: NodeAgent) => {
    fromNode = [];
    link = inProcessLink();
    agent =
      existing ??
      new NodeAgent({
        nodeId,
        backends: [new LocalStorageBackend()],
        poolTypes: [localPoolType],
        poolRoots: createPoolRootPolicy({ allowedRoots: [base] }),
        inspector: createIsoInspector(),
        poolRecheckIntervalMs: 0,
        send: async (message) => {
          if (message.type === 'scan.delta' && beforeDelta) {
            const write = beforeDelta;
            beforeDelta = undefined;
            await write();
          }
          fromNode.push(message);
          link.send(message);
        },
      });
    link.connect(agent, cp.hub, nodeId);
    await waitFor('the scan after the pool sync', () =>
      fromNode.some((m) => m.type === 'response' && (m.result as { poolId?: string })?.poolId === pool.id),
    );
  };

  beforeEach(async () => {
    counter += 1;
    root = join(base, `${client}-pool-${counter}`);
    await mkdir(root, { mode: 0o755 });
    await chmod(root, 0o755);
    nodeId = (await repos.nodes.create({ hostname: `node-${client}-${counter}`, address: '127.0.0.1' })).id;
    pool = await repos.pools.create({
      name: `isos-${client}-${counter}`,
      type: 'local',
      config: { path: root },
      contentTypes: ['iso'],
      shared: true,
      nodeIds: [nodeId],
    });
    await connect();
  });

  afterEach(async () => {
    link.close();
    await agent.close();
  });

  /** One scan as the control plane asks for it; it answers once the node's scan.result is ingested. */
  const scan = () => cp.hub.request(nodeId, { op: 'pool.scan', poolId: pool.id, content: 'iso' });
  type ScanMessage = Extract<NodeMessage, { type: 'scan.result' | 'scan.delta' }>;
  /** The scan messages (whole scans and deltas) the node sent since `from`. */
  const results = (from: number) =>
    fromNode.slice(from).filter((m): m is ScanMessage => m.type === 'scan.result' || m.type === 'scan.delta');
  /** Every row of the pool with its version: equal before and after means nothing was written. */
  const rowVersions = async () =>
    (await repos.images.list({ poolId: pool.id })).map((i) => [i.location?.relPath, i.phase, i.version]).sort();
  const row = (relPath: string) => repos.images.getByLocation({ poolId: pool.id, relPath });
  const rowOf = async (relPath: string) => (await row(relPath)) as Image;

  it('adds what is there, identified, and sends files that are not ISOs as invalid, without a row', async () => {
    await copyFile(made.ubuntu as string, join(root, 'ubuntu-24.04.1-live-server-amd64.iso'));
    await mkdir(join(root, 'windows'));
    await copyFile(made.windows as string, join(root, 'windows', 'Win11_24H2_English_x64.iso'));
    await writeFile(join(root, 'notes.iso'), 'not an ISO at all\n');
    await writeFile(join(root, 'half.iso'), (await readFile(made.debian as string)).subarray(0, 100 * 1024));
    await writeFile(join(root, 'empty.iso'), '');
    await copyFile(made.debian as string, join(root, '.upload-1234.iso.partial')); // an upload in progress
    await writeFile(join(root, 'readme.txt'), 'hello');

    const from = fromNode.length;
    expect(await scan()).toMatchObject({ files: 2, skipped: [] });
    const [sent] = results(from);
    expect(sent?.files.map((f) => f.relPath)).toEqual([
      'ubuntu-24.04.1-live-server-amd64.iso',
      'windows/Win11_24H2_English_x64.iso',
    ]);
    expect(sent?.invalid?.map((i) => [i.relPath, i.code]).sort()).toEqual([
      ['empty.iso', ImagesIsoErrorCode.ISO_EMPTY],
      ['half.iso', ImagesIsoErrorCode.ISO_TRUNCATED],
      ['notes.iso', ImagesIsoErrorCode.ISO_NOT_ISO9660],
    ]);
    expect(await repos.images.count({ poolId: pool.id })).toBe(2);

    const ubuntu = await row('ubuntu-24.04.1-live-server-amd64.iso');
    const info = await stat(join(root, 'ubuntu-24.04.1-live-server-amd64.iso'));
    expect(ubuntu).toMatchObject({
      id: imageIdForLocation(pool.id, 'ubuntu-24.04.1-live-server-amd64.iso'),
      kind: 'iso',
      format: 'iso',
      phase: 'ready',
      sizeBytes: info.size,
      fileModifiedAt: info.mtime,
      os: { family: 'linux', distribution: 'ubuntu', version: '24.04', arch: 'x86_64' },
      labels: {
        [ISO_LABELS.volumeId]: 'Ubuntu-Server 24.04.1 LTS amd64',
        [ISO_LABELS.boot]: 'bios,uefi',
        [ISO_LABELS.osSource]: 'builtin',
        [ISO_LABELS.osRule]: 'builtin:ubuntu',
      },
    });
    expect(await row('windows/Win11_24H2_English_x64.iso')).toMatchObject({
      os: { family: 'windows', distribution: 'windows', version: '11' },
      labels: { [ISO_LABELS.udf]: 'NSR02', [ISO_LABELS.osSource]: 'osinfo' },
    });
  });

  it('does not read unchanged files again, re-reads changed ones, and marks vanished ones missing', async () => {
    await copyFile(made.ubuntu as string, join(root, 'a.iso'));
    await copyFile(made.debian as string, join(root, 'b.iso'));
    await copyFile(made.rocky as string, join(root, 'c.iso'));
    await scan();
    expect(await repos.images.count({ poolId: pool.id, phase: 'ready' })).toBe(3);
    const before = await row('a.iso');

    // Same size and mtime: trusted without reading. Prove it by making the content unreadable as an
    // ISO while keeping both — a scan that read it would send it as invalid and take the image away.
    const a = join(root, 'a.iso');
    const { size, atime, mtime } = await stat(a);
    await writeFile(a, Buffer.alloc(size, 0x41));
    await utimes(a, atime, mtime);
    const from = fromNode.length;
    await scan();
    expect(results(from)[0]?.invalid).toBeUndefined();
    expect(await row('a.iso')).toEqual(before);

    // A changed file (another ISO in its place) is read and its row follows. Gone: c.iso.
    await copyFile(made.windows as string, join(root, 'b.iso'));
    await unlink(join(root, 'c.iso'));
    await scan();
    expect(await row('b.iso')).toMatchObject({
      phase: 'ready',
      os: { distribution: 'windows', version: '11' },
      sizeBytes: (await stat(join(root, 'b.iso'))).size,
    });
    expect(await row('c.iso')).toMatchObject({ phase: 'missing' });
    expect(await row('a.iso')).toEqual(before);

    // Back again: the missing row is ready again, with no new row.
    await copyFile(made.rocky as string, join(root, 'c.iso'));
    await scan();
    expect(await row('c.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'rocky', version: '9.4' } });
    expect(await repos.images.count({ poolId: pool.id })).toBe(3);

    // The same scan applied again changes nothing: every row keeps its version.
    const versions = (await repos.images.list({ poolId: pool.id })).map((i) => [i.id, i.version]);
    await scan();
    expect((await repos.images.list({ poolId: pool.id })).map((i) => [i.id, i.version])).toEqual(versions);
  });

  it('takes an image out of service when its file is overwritten with something that is not an ISO', async () => {
    await copyFile(made.debian as string, join(root, 'debian.iso'));
    await scan();
    await writeFile(join(root, 'debian.iso'), (await readFile(made.debian as string)).subarray(0, 64 * 1024));
    await scan();
    const broken = await rowOf('debian.iso');
    expect(broken).toMatchObject({
      phase: 'missing',
      error: { code: ImagesIsoErrorCode.ISO_TRUNCATED, retryable: false },
    });
    // Unchanged junk is not reported again (the control plane holds it), and the row is not written again.
    const from = fromNode.length;
    await scan();
    expect(results(from)).toEqual([expect.objectContaining({ type: 'scan.delta', files: [], removed: [] })]);
    expect(results(from)[0]).not.toHaveProperty('invalid');
    expect(await row('debian.iso')).toEqual(broken);
    // Fixed: ready again, the error gone.
    await copyFile(made.debian as string, join(root, 'debian.iso'));
    await scan();
    expect(await row('debian.iso')).toMatchObject({ phase: 'ready', error: null });
  });

  it('leaves rows of other phases and under directories beyond maxDepth alone', async () => {
    await copyFile(made.ubuntu as string, join(root, 'downloading.iso'));
    await mkdir(join(root, 'deep', 'er'), { recursive: true });
    await copyFile(made.debian as string, join(root, 'deep', 'er', 'debian.iso'));
    const downloading = await repos.images.create({
      name: 'catalog download',
      kind: 'iso',
      catalogId: 'ubuntu-24.04-server-amd64-iso',
      location: { poolId: pool.id, relPath: 'downloading.iso' },
    });
    await repos.images.update(downloading.id, { phase: 'downloading' });
    await scan();
    expect(await repos.images.get(downloading.id)).toMatchObject({ phase: 'downloading', sizeBytes: null });
    expect(await row('deep/er/debian.iso')).toMatchObject({ phase: 'ready' });

    // The pool now lists only its top level: deep/ is skipped, so deep/er/debian.iso is not known to be gone.
    pool = await repos.pools.update(pool.id, { config: { path: root, maxDepth: 0 } });
    const before = await row('deep/er/debian.iso');
    const pushed = fromNode.length;
    await cp.hub.pushPoolsToAll();
    await waitFor('the node to apply the new definition', () =>
      fromNode.slice(pushed).some((m) => m.type === 'pools.state'),
    );
    expect(await scan()).toMatchObject({ skipped: [{ relPath: 'deep', reason: 'deeper than maxDepth 0' }] });
    expect(await row('deep/er/debian.iso')).toEqual(before);
  });

  it('leaves rows under a directory it cannot read alone, and marks truly vanished files missing', async () => {
    await mkdir(join(root, 'locked'), { mode: 0o755 });
    await copyFile(made.debian as string, join(root, 'locked', 'debian.iso'));
    await copyFile(made.rocky as string, join(root, 'rocky.iso'));
    await copyFile(made.ubuntu as string, join(root, 'ubuntu.iso'));
    await scan();
    const locked = await rowOf('locked/debian.iso');
    expect(locked.phase).toBe('ready');

    await chmod(join(root, 'locked'), 0o000);
    await unlink(join(root, 'ubuntu.iso'));
    // Root reads a mode-000 directory anyway, so the scan runs as an unprivileged user, as a node
    // daemon that is not root would: its readdir of locked/ then fails with EACCES.
    const answer = await asUser(NOBODY, scan).finally(() => chmod(join(root, 'locked'), 0o755));
    expect(answer.skipped).toEqual([{ relPath: 'locked', reason: 'unreadable (EACCES)' }]);
    expect(await row('locked/debian.iso')).toEqual(locked);
    expect(await row('ubuntu.iso')).toMatchObject({ phase: 'missing' });
    expect(await row('rocky.iso')).toMatchObject({ phase: 'ready' });
  });

  it('refuses symbolic links (they may lead out of the pool) and leaves rows under them alone', async () => {
    const outside = join(base, `${client}-outside-${counter}`);
    await mkdir(outside);
    await copyFile(made.ubuntu as string, join(outside, 'secret.iso'));
    await mkdir(join(root, 'shelf'));
    await copyFile(made.debian as string, join(root, 'shelf', 'debian.iso'));
    await scan();
    const shelved = await rowOf('shelf/debian.iso');

    // shelf/ becomes a link out of the pool, and a link to an outside ISO appears beside it.
    await rename(join(root, 'shelf'), join(base, `${client}-shelf-${counter}`));
    await symlink(outside, join(root, 'shelf'));
    await symlink(join(outside, 'secret.iso'), join(root, 'linked.iso'));
    expect((await scan()).skipped).toEqual([
      { relPath: 'linked.iso', reason: 'symbolic link, not followed' },
      { relPath: 'shelf', reason: 'symbolic link to a directory, not followed' },
    ]);
    expect(await row('shelf/debian.iso')).toEqual(shelved);
    expect(await row('linked.iso')).toBeUndefined();
    expect(await row('shelf/secret.iso')).toBeUndefined();
    expect(await repos.images.count({ poolId: pool.id })).toBe(1);
  });

  it('skips files whose names no relPath can hold (a backslash, bytes that are not UTF-8), naming them, and scans in the rest', async () => {
    // Legal Linux names from other systems: "x64\\Win11.iso" off a Windows share, Latin-1 "café.iso".
    await copyFile(made.debian as string, join(root, 'x64\\Win11.iso'));
    await copyFile(
      made.debian as string,
      Buffer.concat([Buffer.from(`${root}/caf`), Buffer.from([0xe9]), Buffer.from('.iso')]),
    );
    await copyFile(made.ubuntu as string, join(root, 'ubuntu.iso'));
    const answer = (await scan()) as { files: number; skipped: unknown[] };
    expect(answer.files).toBe(1);
    expect(answer.skipped).toEqual([
      { relPath: 'caf\uFFFD.iso', reason: 'name is not valid UTF-8; rename it to have it listed' },
      { relPath: 'x64\\Win11.iso', reason: "name contains '\\', which a relPath cannot" },
    ]);
    expect((await rowOf('ubuntu.iso')).phase).toBe('ready');
    expect(await repos.images.count({ poolId: pool.id })).toBe(1);
  });

  it('fails without touching any row when the pool directory is not there', async () => {
    await copyFile(made.ubuntu as string, join(root, 'u.iso'));
    await scan();
    await rename(root, `${root}.away`);
    try {
      await expect(scan()).rejects.toMatchObject({ code: ErrorCode.POOL_UNAVAILABLE });
      expect(await row('u.iso')).toMatchObject({ phase: 'ready' });
    } finally {
      await rename(`${root}.away`, root);
    }
  });

  it('records an ISO whose volume id holds terminal escapes with them replaced (U+FFFD), never raw', async () => {
    await copyFile(made.escapes as string, join(root, 'escapes.iso'));
    await scan();
    const row = await rowOf('escapes.iso');
    expect(row.phase).toBe('ready');
    expect(row.labels[ISO_LABELS.volumeId]).toBe('EVIL\uFFFD[2J\uFFFD]0;pwned\uFFFDX');
  });

  it('records the firmware the media need, the node of a node-local pool, and announces phase changes', async () => {
    pool = await repos.pools.update(pool.id, { shared: false });
    await copyFile(made.efi as string, join(root, 'efi.iso'));
    const phases: QuantixEvents['image.phase'][] = [];
    const record = (event: QuantixEvents['image.phase']) => phases.push(event);
    quantix.events.on('image.phase', record);
    try {
      await scan();
      const efi = await rowOf('efi.iso');
      expect(efi).toMatchObject({
        nodeId,
        requirements: { firmware: 'uefi' },
        os: { distribution: 'fedora', arch: 'aarch64' },
      });
      await unlink(join(root, 'efi.iso'));
      await scan();
      expect(phases).toEqual([
        { imageId: efi.id, from: null, to: 'ready', error: null },
        { imageId: efi.id, from: 'ready', to: 'missing', error: null },
      ]);
    } finally {
      quantix.events.off('image.phase', record);
    }
  });

  describe('delta scans', () => {
    it('a warm rescan sends an empty delta and leaves every row as it was', async () => {
      await copyFile(made.ubuntu as string, join(root, 'a.iso'));
      await copyFile(made.debian as string, join(root, 'b.iso'));
      await scan();
      const versions = await rowVersions();
      expect(versions).toHaveLength(2);

      const from = fromNode.length;
      expect(await scan()).toMatchObject({ files: 2, delta: true });
      const [sent, ...more] = results(from);
      expect(more).toEqual([]);
      expect(sent).toMatchObject({ type: 'scan.delta', files: [], removed: [] });
      expect(sent?.type === 'scan.delta' && sent.base).toBe(sent?.fingerprint);
      // What crossed the wire is a few hundred bytes, not a file list.
      expect(JSON.stringify(sent).length).toBeLessThan(300);
      expect(await rowVersions()).toEqual(versions);
    });

    it('after warm rescans that found nothing new, still sees a file whose mtime alone changed', async () => {
      await copyFile(made.ubuntu as string, join(root, 'same.iso'));
      await copyFile(made.debian as string, join(root, 'other.iso'));
      await scan();
      // Warm twice: the second compares the listing with the last one and reads nothing.
      for (let i = 0; i < 2; i++) {
        const from = fromNode.length;
        await scan();
        expect(results(from)[0]).toMatchObject({ type: 'scan.delta', files: [], removed: [] });
      }
      const later = new Date(Date.now() + 60_000);
      await utimes(join(root, 'same.iso'), later, later);
      const from = fromNode.length;
      expect(await scan()).toMatchObject({ files: 2, delta: true });
      const [sent] = results(from);
      expect(sent?.files.map((f) => f.relPath)).toEqual(['same.iso']);
      expect((await row('same.iso'))?.fileModifiedAt?.getTime()).toBe(later.getTime());
    });

    it('sends a file added, removed or changed between scans, and the rows follow', async () => {
      await copyFile(made.ubuntu as string, join(root, 'keep.iso'));
      await copyFile(made.debian as string, join(root, 'change.iso'));
      await copyFile(made.rocky as string, join(root, 'remove.iso'));
      await scan();
      const kept = await rowOf('keep.iso');

      await copyFile(made.windows as string, join(root, 'change.iso'));
      await unlink(join(root, 'remove.iso'));
      await mkdir(join(root, 'new'));
      await copyFile(made.efi as string, join(root, 'new', 'added.iso'));
      const from = fromNode.length;
      expect(await scan()).toMatchObject({ files: 3, delta: true });
      const [sent] = results(from);
      expect(sent?.type).toBe('scan.delta');
      expect(sent?.files.map((f) => f.relPath).sort()).toEqual(['change.iso', 'new/added.iso']);
      expect(sent?.type === 'scan.delta' && sent.removed).toEqual(['remove.iso']);

      expect(await row('change.iso')).toMatchObject({
        phase: 'ready',
        os: { distribution: 'windows', version: '11' },
        sizeBytes: (await stat(join(root, 'change.iso'))).size,
      });
      expect(await row('remove.iso')).toMatchObject({ phase: 'missing' });
      expect(await row('new/added.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'fedora' } });
      expect(await row('keep.iso')).toEqual(kept);

      // Back again, as a delta too: the missing row is ready again.
      await copyFile(made.rocky as string, join(root, 'remove.iso'));
      await scan();
      expect(await row('remove.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'rocky' } });
      expect(await repos.images.count({ poolId: pool.id })).toBe(4);
    });

    it('asks for a full scan when rows were deleted since the last scan, and the image comes back', async () => {
      await copyFile(made.ubuntu as string, join(root, 'a.iso'));
      await copyFile(made.debian as string, join(root, 'b.iso'));
      await scan();
      await repos.images.delete((await rowOf('a.iso')).id);

      const from = fromNode.length;
      const answer = await scan();
      expect(answer.delta).toBeUndefined();
      // The node answers the hub's `since` with its (empty) changes; the hub, its rows changed since,
      // refuses them and asks again for the whole scan.
      expect(results(from).map((m) => m.type)).toEqual(['scan.delta', 'scan.result']);
      expect(await row('a.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'ubuntu' } });
      expect(await repos.images.count({ poolId: pool.id, phase: 'ready' })).toBe(2);
    });

    it('refuses a delta whose rows changed while it was on its way, and takes a full scan instead', async () => {
      await copyFile(made.ubuntu as string, join(root, 'a.iso'));
      await scan();
      await copyFile(made.debian as string, join(root, 'b.iso'));
      // Someone deletes a.iso's row after the hub asked and before the delta (which does not name
      // a.iso, unchanged on disk) arrives: applied, it would leave the image lost.
      beforeDelta = async () => repos.images.delete((await rowOf('a.iso')).id);

      const from = fromNode.length;
      const answer = await scan();
      expect(results(from).map((m) => m.type)).toEqual(['scan.delta', 'scan.result']);
      expect(answer.delta).toBeUndefined();
      expect(await row('a.iso')).toMatchObject({ phase: 'ready' });
      expect(await row('b.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'debian' } });
    });

    it('gives a restarted control plane (no memory of the node) a full scan, then deltas again', async () => {
      await copyFile(made.ubuntu as string, join(root, 'a.iso'));
      await copyFile(made.debian as string, join(root, 'b.iso'));
      await scan();
      link.close();
      await cp.close();
      // Changed while the control plane was down.
      await unlink(join(root, 'b.iso'));
      await copyFile(made.rocky as string, join(root, 'c.iso'));
      cp = createControlPlane({ quantix });
      await cp.start();
      await connect(agent);
      // The scan after the sync was whole: the new hub held nothing to take changes against.
      expect(results(0).map((m) => m.type)).toEqual(['scan.result']);
      // Its answer has been sent; the hub may still be writing what came before it.
      await vi.waitFor(async () => expect(await row('b.iso')).toMatchObject({ phase: 'missing' }), WAIT);
      expect(await row('c.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'rocky' } });
      expect(await row('a.iso')).toMatchObject({ phase: 'ready' });

      const from = fromNode.length;
      expect(await scan()).toMatchObject({ files: 2, delta: true });
      expect(results(from).map((m) => m.type)).toEqual(['scan.delta']);
    });

    it('converges after a node restart (its memory lost): the hub asks for changes, the node sends all', async () => {
      await copyFile(made.ubuntu as string, join(root, 'a.iso'));
      await copyFile(made.debian as string, join(root, 'b.iso'));
      await scan();
      link.close();
      await agent.close();
      // Changed while the node was down.
      await copyFile(made.windows as string, join(root, 'b.iso'));
      await copyFile(made.rocky as string, join(root, 'c.iso'));
      await unlink(join(root, 'a.iso'));
      await connect();
      expect(results(0).map((m) => m.type)).toEqual(['scan.result']);
      await vi.waitFor(async () => expect(await row('a.iso')).toMatchObject({ phase: 'missing' }), WAIT);
      expect(await row('b.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'windows' } });
      expect(await row('c.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'rocky' } });

      const versions = await rowVersions();
      const from = fromNode.length;
      expect(await scan()).toMatchObject({ files: 2, delta: true });
      expect(await rowVersions()).toEqual(versions);
      expect(results(from)).toEqual([expect.objectContaining({ type: 'scan.delta', files: [], removed: [] })]);
    });
  });

  it('writes nothing for a scan whose result never arrives (the connection dropped)', async () => {
    await copyFile(made.ubuntu as string, join(root, 'u.iso'));
    const pending = scan();
    link.close();
    await expect(pending).rejects.toMatchObject({ code: expect.any(String) });
    expect(await repos.images.count({ poolId: pool.id })).toBe(0);
  });
});
