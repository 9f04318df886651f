/**
 * Image copies between pools and nodes, with real parts: the control plane (fastify, the hub) on
 * PGlite, two real node daemons over real WebSockets, real pool directories, and a real HTTP
 * mirror serving the catalog's qcow2. A copy on one node is a local file.copy (no HTTP); a copy
 * to another node is that node's resumable, verified download of the control plane's content of
 * the source, with a copy ticket; a catalog download prefers a verified copy already in the
 * cluster over the mirror.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline, Transform } from 'node:stream';
import { COPY_METHOD_LABEL, newToken } from '@quantix/control-plane';
import { createPoolRootPolicy, createQuantix, type Quantix } from '@quantix/core';
import { mountSmallFilesystem } from '@quantix/core/testing';
import type { startNodeDaemon } from '@quantix/example-node-daemon';
import { createImagesCloudPlugin } from '@quantix/images-cloud';
import { type ImageServer, makeQcow2, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../src/control-plane.js';
import { apiCaller, mirrorEntry, startNodeWithPool, waitFor } from './harness.js';
import { QUANTIX } from './processes.js';

const API_TOKEN = newToken();
const silent = pino({ level: 'silent' });
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('image copies', () => {
  let root: string;
  let quantix: Quantix;
  let cp: ControlPlane;
  let nodes: Awaited<ReturnType<typeof startNodeDaemon>>[] = [];
  let mirror: ImageServer;
  let bytes: Buffer;
  // biome-ignore lint/suspicious/noExplicitAny: API answers are checked field by field
  let source: any;
  const api = apiCaller(() => cp.url, API_TOKEN);

  const entry = (id: string) => mirrorEntry(mirror.url, id, `Tiny ${id}`, 'tiny.qcow2');

  /** The image's row once it is no longer busy. */
  async function settled(id: string) {
    let image = (await api('GET', `/images/${id}`)).body;
    await waitFor(
      async () => {
        image = (await api('GET', `/images/${id}`)).body;
        return !['pending', 'downloading', 'verifying'].includes(image.phase);
      },
      `image ${id} to settle`,
      60_000,
    );
    return image;
  }

  const onDisk = (poolId: string, relPath: string) => join(root, poolId, relPath);

  /** A local pool `<root>/<id>` on one node, active there. */
  async function addPool(id: string, nodeId: string, contentTypes?: string[]) {
    const made = await api('POST', '/pools', {
      id,
      name: id,
      type: 'local',
      config: { path: join(root, id), create: true },
      ...(contentTypes ? { contentTypes } : {}),
      nodeIds: [nodeId],
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    await waitFor(async () => (await api('GET', `/pools/${id}`)).body.nodeStates[0]?.status === 'active', `pool ${id}`);
  }

  /**
   * The control plane's image exports paced (a slow link: 100 ms a chunk) while `paced`, the
   * ranges asked for recorded; `restore` puts the real ones back.
   */
  function paceExports() {
    const link = { paced: true, ranges: [] as { start: number; end: number }[], restore: () => {} };
    const open = cp.exports.open.bind(cp.exports);
    cp.exports.open = async (target, range) => {
      link.ranges.push(range);
      const body = await open(target, range);
      if (!link.paced) return body;
      const slow = new Transform({
        transform(chunk, _encoding, done) {
          setTimeout(() => done(null, chunk), 100);
        },
      });
      pipeline(body, slow, () => {});
      return slow;
    };
    link.restore = () => {
      cp.exports.open = open;
    };
    return link;
  }

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'quantix-copies-'));
    mirror = await startImageServer();
    bytes = await makeQcow2(root, 'tiny.qcow2', 8);
    mirror.setFile('/images/tiny.qcow2', bytes);
    mirror.setFile('/images/SHA256SUMS', sha256Sums({ 'tiny.qcow2': bytes }));
    quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [
        createImagesCloudPlugin({
          entries: [entry('tiny')],
          // The control plane reads the mirror's sums file (on this machine's loopback).
          fetcher: { policy: { allowAddresses: ['127.0.0.1'] } },
        }),
        createStorageLocalPlugin({ backend: false }),
      ],
      logger: silent,
    });
    cp = await startControlPlane({
      quantix,
      apiToken: API_TOKEN,
      stagingDir: join(root, 'staging'),
      poolRoots: createPoolRootPolicy({ allowedRoots: [root] }),
    });
    const controlPlaneUrl = `http://127.0.0.1:${new URL(cp.url).port}`;
    const common = { quantix, controlPlaneUrl, api, root, allowSourceAddresses: ['127.0.0.1'] };
    nodes.push(await startNodeWithPool({ ...common, nodeId: 'n1', poolId: 'p1' }));
    nodes.push(await startNodeWithPool({ ...common, nodeId: 'n2', poolId: 'p2' }));
    // A second pool on n1, for copies that never leave the node.
    await addPool('p1b', 'n1');

    const started = await api('POST', '/images/download', { catalogId: 'tiny', poolId: 'p1' });
    expect(started.status).toBe(202);
    source = await settled(started.body.id);
    expect(source.phase).toBe('ready');
  }, 120_000);

  afterAll(async () => {
    for (const node of nodes) await node.close();
    nodes = [];
    await cp?.close();
    await quantix?.close();
    await mirror?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('copies on the node when it holds both pools: file.copy, no HTTP fetch', async () => {
    const mirrorRequests = mirror.requestsFor('/images/tiny.qcow2').length;
    const started = await api('POST', `/images/${source.id}/copy`, { poolId: 'p1b', name: 'tiny copy' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body).toMatchObject({ copiedFrom: source.id, name: 'tiny copy', catalogId: 'tiny' });
    const copy = await settled(started.body.id);
    expect(copy.phase, JSON.stringify(copy.error)).toBe('ready');
    expect(copy.labels[COPY_METHOD_LABEL]).toBe('local');
    expect(copy).toMatchObject({
      copiedFrom: source.id,
      checksum: source.checksum,
      kind: source.kind,
      format: source.format,
      virtualSizeBytes: source.virtualSizeBytes,
      sizeBytes: source.sizeBytes,
      os: source.os,
      requirements: source.requirements,
      nodeId: 'n1',
      location: { poolId: 'p1b', relPath: source.location.relPath },
    });
    expect(sha256(readFileSync(onDisk('p1b', source.location.relPath)))).toBe(source.checksum.value);
    expect(mirror.requestsFor('/images/tiny.qcow2').length).toBe(mirrorRequests);
    // The list says which image each is a copy of, as getImage does.
    const listed = (await api('GET', '/images?limit=500')).body.images as { id: string; copiedFrom: string | null }[];
    expect(listed.find((image) => image.id === copy.id)?.copiedFrom).toBe(source.id);
    expect(listed.find((image) => image.id === source.id)?.copiedFrom).toBeNull();
  });

  it('copies to another node through the control plane, resuming from a partial file', async () => {
    // What a copy cut half-way leaves: the first half of the bytes in the partial file, with the
    // source it came from (the content URL, no ticket) — as the fetcher records it.
    const relPath = source.location.relPath as string;
    const target = onDisk('p2', relPath);
    mkdirSync(dirname(target), { recursive: true });
    const half = Math.floor(bytes.length / 2);
    writeFileSync(`${target}.partial`, bytes.subarray(0, half));
    const contentUrl = `http://127.0.0.1:${new URL(cp.url).port}/api/v1/images/${source.id}/content`;
    writeFileSync(
      `${target}.partial.meta`,
      JSON.stringify({
        version: 1,
        url: contentUrl,
        etag: `"sha256-${source.checksum.value}"`,
        lastModified: null,
        totalBytes: bytes.length,
      }),
    );
    const mirrorRequests = mirror.requestsFor('/images/tiny.qcow2').length;
    // Which ranges of the source the control plane streams (observed, not changed).
    const ranges: { start: number; end: number }[] = [];
    const open = cp.exports.open.bind(cp.exports);
    cp.exports.open = (target, range) => {
      ranges.push(range);
      return open(target, range);
    };
    const started = await api('POST', `/images/${source.id}/copy`, { poolId: 'p2' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.copiedFrom).toBe(source.id);
    // The recorded source carries no ticket.
    expect(JSON.stringify(started.body.labels)).not.toContain('ticket');
    const copy = await settled(started.body.id);
    expect(copy.phase, JSON.stringify(copy.error)).toBe('ready');
    expect(copy.labels[COPY_METHOD_LABEL]).toBe('http');
    expect(copy).toMatchObject({
      nodeId: 'n2',
      checksum: source.checksum,
      format: source.format,
      virtualSizeBytes: source.virtualSizeBytes,
      location: { poolId: 'p2', relPath },
    });
    // Only the second half crossed: the copy resumed from the partial file.
    expect(ranges).toEqual([{ start: half, end: bytes.length - 1 }]);
    cp.exports.open = open;
    expect(sha256(readFileSync(target))).toBe(source.checksum.value);
    expect(mirror.requestsFor('/images/tiny.qcow2').length).toBe(mirrorRequests);
  });

  it('is cut mid-way (cancelled), then retried: it resumes from the partial file and ends ready', async () => {
    // A second pool on n2 for a copy of its own.
    await addPool('p2b', 'n2');
    // The source's bytes paced (a slow link), and the ranges streamed recorded.
    const link = paceExports();
    const { ranges } = link;
    try {
      const started = await api('POST', `/images/${source.id}/copy`, { poolId: 'p2b' });
      expect(started.status).toBe(202);
      const partial = `${onDisk('p2b', source.location.relPath)}.partial`;
      await waitFor(async () => existsSync(partial) && statSync(partial).size > 0, 'the first bytes of the copy');
      const cancelled = await cp.downloads.cancel(started.body.id);
      expect(cancelled.phase).toBe('error');
      expect(cancelled.error?.code).toBe('DOWNLOAD_CANCELLED');
      const kept = statSync(partial).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(bytes.length);
      link.paced = false;
      const retried = await api('POST', `/images/${started.body.id}/retry`);
      expect(retried.status, JSON.stringify(retried.body)).toBe(202);
      const copy = await settled(started.body.id);
      expect(copy.phase, JSON.stringify(copy.error)).toBe('ready');
      expect(copy.labels[COPY_METHOD_LABEL]).toBe('http');
      expect(sha256(readFileSync(onDisk('p2b', source.location.relPath)))).toBe(source.checksum.value);
      // The retry (with a ticket minted for it) asked for the rest only.
      expect(ranges.length).toBe(2);
      expect(ranges[1]?.start).toBeGreaterThan(0);
      expect(ranges[1]?.end).toBe(bytes.length - 1);
    } finally {
      link.restore();
    }
  });

  it('deletes a copy that failed: 204, and what it left to resume from goes with it', async () => {
    await addPool('p2e', 'n2');
    const link = paceExports();
    try {
      const started = await api('POST', `/images/${source.id}/copy`, { poolId: 'p2e' });
      expect(started.status).toBe(202);
      const target = onDisk('p2e', source.location.relPath);
      await waitFor(async () => existsSync(`${target}.partial`) && statSync(`${target}.partial`).size > 0, 'bytes');
      expect((await cp.downloads.cancel(started.body.id)).phase).toBe('error');
      expect(existsSync(`${target}.partial.meta`)).toBe(true);
      // The image never had its file: deleting it must not fail on the file that is not there.
      const deleted = await api('DELETE', `/images/${started.body.id}`);
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
      expect((await api('GET', `/images/${started.body.id}`)).status).toBe(404);
      expect([target, `${target}.partial`, `${target}.partial.meta`].filter((path) => existsSync(path))).toEqual([]);
    } finally {
      link.restore();
    }
  });

  it('quantix images copy --wait follows the copy to ready (the built CLI)', async () => {
    await addPool('p2d', 'n2');
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [QUANTIX, 'images', 'copy', source.id, '--pool', 'p2d', '--name', 'cli copy', '--wait'],
        { env: { ...process.env, QUANTIX_URL: cp.url, QUANTIX_TOKEN: API_TOKEN } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toContain('cli copy is ready');
    const listed = await api('GET', '/images?poolId=p2d');
    expect(listed.body.images[0]).toMatchObject({ name: 'cli copy', phase: 'ready', checksum: source.checksum });
  });

  it('copies a file a scan found, reading its checksum on its node first; verify holds the file to it', async () => {
    // A qcow2 put into p1 by hand: the scan records it without a checksum.
    const handMade = await makeQcow2(root, 'by-hand.qcow2', 2);
    const relPath = 'images/by-hand.qcow2';
    writeFileSync(onDisk('p1', relPath), handMade);
    expect((await api('POST', '/images/rescan', { poolId: 'p1' })).status).toBe(200);
    const found = (
      (await api('GET', '/images?poolId=p1&limit=500')).body.images as { id: string; location: { relPath: string } }[]
    ).find((image) => image.location.relPath === relPath);
    expect(found).toBeDefined();
    const id = found?.id as string;
    expect((await api('GET', `/images/${id}`)).body).toMatchObject({ phase: 'ready', checksum: null });

    // The copy to the other node: n1 reads the file's checksum, which the copy is verified against.
    const started = await api('POST', `/images/${id}/copy`, { poolId: 'p2' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const copy = await settled(started.body.id);
    const checksum = { algorithm: 'sha256', value: sha256(handMade) };
    expect(copy, JSON.stringify(copy.error)).toMatchObject({ phase: 'ready', checksum, copiedFrom: id });
    expect(sha256(readFileSync(onDisk('p2', relPath)))).toBe(checksum.value);
    expect((await api('GET', `/images/${id}`)).body).toMatchObject({ checksum, sizeBytes: handMade.length });

    // Verified again: the same file.
    const again = await api('POST', `/images/${id}/verify`, {});
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body).toMatchObject({ outcome: 'matches', checksum, recorded: checksum, nodeId: 'n1' });

    // Other bytes of the same size (written over by hand): a mismatch, and the image is out of use
    // (error, nothing to download it again from: not retryable), its checksum kept ...
    const other = Buffer.from(handMade);
    other[other.length - 1] = (other.at(-1) ?? 0) ^ 0xff;
    writeFileSync(onDisk('p1', relPath), other);
    const otherChecksum = { algorithm: 'sha256', value: sha256(other) };
    const mismatch = await api('POST', `/images/${id}/verify`);
    expect(mismatch.body).toMatchObject({ outcome: 'mismatch', checksum: otherChecksum, recorded: checksum });
    const outOfUse = {
      phase: 'error',
      checksum,
      error: { code: 'IMAGE_FILE_MISMATCH', retryable: false, message: expect.stringContaining(otherChecksum.value) },
    };
    expect(mismatch.body.image).toMatchObject(outOfUse);
    expect((await api('GET', `/images/${id}`)).body).toMatchObject(outOfUse);
    const refused = await api('POST', `/images/${id}/copy`, { poolId: 'p2' });
    expect(refused.body.error?.code).toBe('IMAGE_NOT_READY');
    // ... a scan leaves it so (the file is there, and is still not the one recorded) ...
    expect((await api('POST', '/images/rescan', { poolId: 'p1' })).status).toBe(200);
    expect((await api('GET', `/images/${id}`)).body).toMatchObject(outOfUse);
    // ... verified again with the file put back: ready, as it was ...
    writeFileSync(onDisk('p1', relPath), handMade);
    const putBack = await api('POST', `/images/${id}/verify`);
    expect(putBack.body).toMatchObject({ outcome: 'matches', image: { phase: 'ready', error: null, checksum } });
    // ... and written over again, until the file is accepted as it is.
    writeFileSync(onDisk('p1', relPath), other);
    expect((await api('POST', `/images/${id}/verify`)).body.image).toMatchObject(outOfUse);
    const accepted = await api('POST', `/images/${id}/verify`, { accept: true });
    expect(accepted.body).toMatchObject({ outcome: 'accepted', checksum: otherChecksum, recorded: checksum });
    expect((await api('GET', `/images/${id}`)).body).toMatchObject({
      phase: 'ready',
      error: null,
      checksum: otherChecksum,
    });

    // A file of another size found by a scan keeps no checksum: it described other bytes.
    writeFileSync(onDisk('p1', relPath), Buffer.concat([other, Buffer.alloc(512)]));
    expect((await api('POST', '/images/rescan', { poolId: 'p1' })).status).toBe(200);
    expect((await api('GET', `/images/${id}`)).body).toMatchObject({
      phase: 'ready',
      sizeBytes: other.length + 512,
      checksum: null,
    });

    // Gone: nothing to read.
    rmSync(onDisk('p1', relPath));
    const gone = await api('POST', `/images/${id}/verify`);
    expect(gone.status).toBe(409);
    expect(gone.body.error.code).toBe('IMAGE_FILE_MISSING');
  });

  it('takes a downloaded image whose file was written over out of use, and a retry downloads it again', async () => {
    // The node downloaded it moments ago (beforeAll): asked again, it would answer from that
    // download's result while the file stood as written; written over, the file is fetched again.
    const path = onDisk('p1', source.location.relPath);
    const other = Buffer.from(bytes);
    other[100] = (other[100] ?? 0) ^ 0xff;
    writeFileSync(path, other);
    const mismatch = await api('POST', `/images/${source.id}/verify`);
    expect(mismatch.body).toMatchObject({
      outcome: 'mismatch',
      recorded: source.checksum,
      image: { phase: 'error', error: { code: 'IMAGE_FILE_MISMATCH', retryable: true }, progress: null },
    });
    const fetchesBefore = mirror.requestsFor('/images/tiny.qcow2').length;
    const retried = await api('POST', `/images/${source.id}/retry`);
    expect(retried.status, JSON.stringify(retried.body)).toBe(202);
    const again = await settled(source.id);
    expect(again, JSON.stringify(again.error)).toMatchObject({ phase: 'ready', checksum: source.checksum });
    expect(sha256(readFileSync(path))).toBe(source.checksum.value);
    expect(mirror.requestsFor('/images/tiny.qcow2').length).toBeGreaterThan(fetchesBefore);
    expect((await api('POST', `/images/${source.id}/verify`)).body.outcome).toBe('matches');
  });

  it('refuses copies that cannot be made, with stable codes', async () => {
    const refuse = async (id: string, body: unknown, status: number, code: string) => {
      const answer = await api('POST', `/images/${id}/copy`, body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(status);
      expect(answer.body.error.code).toBe(code);
    };
    await refuse('no-such-image', { poolId: 'p2' }, 404, 'NOT_FOUND');
    await refuse(source.id, { poolId: 'no-such-pool' }, 404, 'NOT_FOUND');
    await refuse(source.id, { poolId: 'p1' }, 409, 'ALREADY_EXISTS');
    await refuse(source.id, {}, 400, 'INVALID_INPUT');

    // A pool that holds ISOs only.
    await addPool('p-iso', 'n1', ['iso']);
    await refuse(source.id, { poolId: 'p-iso' }, 400, 'INVALID_INPUT');

    // Not ready, no location; no checksum and no file to read one of.
    const rows = quantix.repositories.images;
    const pending = await rows.create({
      name: 'pending',
      kind: 'cloud',
      phase: 'pending',
      location: { poolId: 'p1', relPath: 'images/pending.qcow2' },
      nodeId: 'n1',
    });
    await refuse(pending.id, { poolId: 'p2' }, 409, 'IMAGE_NOT_READY');
    const unplaced = await rows.create({ name: 'unplaced', kind: 'cloud', phase: 'ready' });
    await refuse(unplaced.id, { poolId: 'p2' }, 409, 'IMAGE_NO_LOCATION');
    const unsummed = await rows.create({
      name: 'unsummed',
      kind: 'cloud',
      phase: 'ready',
      location: { poolId: 'p1', relPath: 'images/unsummed.qcow2' },
      nodeId: 'n1',
    });
    await refuse(unsummed.id, { poolId: 'p2' }, 409, 'IMAGE_FILE_MISSING');
  });

  it('refuses a copy or an import into a file another image holds, and an import without its SHA-256, recording nothing', async () => {
    await addPool('p-taken', 'n1');
    // An image of its own at the file name the copy and the import would take (an upload, say).
    const other = await quantix.repositories.images.create({
      name: 'mine',
      kind: 'cloud',
      phase: 'ready',
      location: { poolId: 'p-taken', relPath: 'images/tiny.qcow2' },
      nodeId: 'n1',
    });
    const count = async () => (await api('GET', '/images?poolId=p-taken')).body.images.length;

    const copy = await api('POST', `/images/${source.id}/copy`, { poolId: 'p-taken' });
    expect(copy.status, JSON.stringify(copy.body)).toBe(409);
    expect(copy.body.error).toMatchObject({ code: 'ALREADY_EXISTS', details: { imageId: other.id } });
    expect(copy.body.error.message).toMatch(
      /already has an image at images\/tiny\.qcow2 \(mine, ready\).*it is not a copy of image/,
    );

    const url = `${mirror.url}/images/tiny.qcow2`;
    const imported = await api('POST', '/images/import', { url, sha256: sha256(bytes), poolId: 'p-taken' });
    expect(imported.status, JSON.stringify(imported.body)).toBe(409);
    expect(imported.body.error).toMatchObject({ code: 'ALREADY_EXISTS', details: { imageId: other.id } });
    expect(imported.body.error.message).toMatch(/it was not downloaded/);

    // Nodes refuse a download they cannot verify: the API says so before a row is made.
    const unverified = await api('POST', '/images/import', { url, poolId: 'p1' });
    expect(unverified.status).toBe(400);
    expect(JSON.stringify(unverified.body.error)).toMatch(/an import is verified: give the SHA-256 of the file/);
    expect(await count()).toBe(1);
    expect((await api('GET', `/images/${other.id}`)).body).toMatchObject({ name: 'mine', phase: 'ready' });
  });

  /** A pool `id` on `nodeId` on a real 64 KiB file system (smaller than the source), active there; `unmount` when done. */
  async function smallPool(id: string, nodeId: string) {
    const small = mountSmallFilesystem('64k', { under: root });
    expect(source.sizeBytes).toBeGreaterThan(64 * 1024);
    const made = await api('POST', '/pools', {
      id,
      name: id,
      type: 'local',
      config: { path: join(small.path, 'pool'), create: true },
      nodeIds: [nodeId],
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    await waitFor(async () => (await api('GET', `/pools/${id}`)).body.nodeStates[0]?.status === 'active', id);
    return small;
  }

  it('refuses a copy to another node into a pool without room before recording anything: 507 POOL_NO_SPACE, as that node reads its free space', async () => {
    const small = await smallPool('p-small', 'n2');
    try {
      const refused = await api('POST', `/images/${source.id}/copy`, { poolId: 'p-small' });
      expect(refused.status, JSON.stringify(refused.body)).toBe(507);
      expect(refused.body.error).toMatchObject({
        code: 'POOL_NO_SPACE',
        details: { poolId: 'p-small', nodeId: 'n2', sizeBytes: source.sizeBytes, availableBytes: expect.any(Number) },
      });
      expect(refused.body.error.details.availableBytes).toBeLessThan(source.sizeBytes);
      expect(refused.body.error.message).toMatch(
        /^Pool p-small has no room for the copy: it is \d+ bytes and \d+ are free there/,
      );
      // Nothing recorded, nothing written.
      expect(await quantix.repositories.images.count({ poolId: 'p-small' })).toBe(0);
      expect(readdirSync(join(small.path, 'pool'))).toEqual([]);
      expect((await api('DELETE', '/pools/p-small')).status).toBe(204);
    } finally {
      small.unmount();
    }
  });

  it('leaves a copy on the node holding the source to that node (a clone needs no room): 202, then the node refuses it if it must write the bytes', async () => {
    const small = await smallPool('p-small-n1', 'n1');
    try {
      const accepted = await api('POST', `/images/${source.id}/copy`, { poolId: 'p-small-n1' });
      expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
      // tmpfs cannot clone: the node copies, and finds no room before writing a byte.
      expect(await settled(accepted.body.id)).toMatchObject({ phase: 'error', error: { code: 'POOL_NO_SPACE' } });
      expect((await api('DELETE', `/images/${accepted.body.id}`)).status).toBe(204);
      expect((await api('DELETE', '/pools/p-small-n1')).status).toBe(204);
    } finally {
      small.unmount();
    }
  });

  it('a catalog download prefers a verified copy in the cluster to the mirror', async () => {
    await addPool('p2c', 'n2');
    mirror.reset();
    const started = await api('POST', '/images/download', { catalogId: 'tiny', poolId: 'p2c' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.copiedFrom).toEqual(expect.any(String));
    const image = await settled(started.body.id);
    expect(image.phase, JSON.stringify(image.error)).toBe('ready');
    expect(image.checksum).toEqual(source.checksum);
    expect(mirror.requestsFor('/images/tiny.qcow2')).toEqual([]);
    // What the sums file says now was read, to know the cluster's copy is still upstream's build.
    expect(mirror.requestsFor('/images/SHA256SUMS').length).toBeGreaterThan(0);
    expect(sha256(readFileSync(onDisk('p2c', image.location.relPath)))).toBe(source.checksum.value);
  });

  it('a catalog download whose cluster copy lost its source fetches the entry from the mirror on retry', async () => {
    // One copy of the entry left in the cluster (the source on n1), so the copy to n2 goes over HTTP.
    const listed = (await api('GET', '/images?limit=500')).body.images as { id: string; catalogId: string | null }[];
    for (const other of listed.filter((image) => image.catalogId === 'tiny' && image.id !== source.id)) {
      expect((await api('DELETE', `/images/${other.id}`)).status).toBeLessThan(300);
    }
    await addPool('p2f', 'n2');
    const link = paceExports();
    try {
      mirror.reset();
      const started = await api('POST', '/images/download', { catalogId: 'tiny', poolId: 'p2f' });
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      expect(started.body.copiedFrom).toBe(source.id);
      const partial = `${onDisk('p2f', started.body.location.relPath)}.partial`;
      await waitFor(async () => existsSync(partial) && statSync(partial).size > 0, 'the first bytes of the copy');
      expect((await cp.downloads.cancel(started.body.id)).error?.code).toBe('DOWNLOAD_CANCELLED');
      // The source goes away before the retry.
      expect((await api('DELETE', `/images/${source.id}`)).status).toBeLessThan(300);
      await waitFor(async () => (await api('GET', `/images/${source.id}`)).status === 404, 'the source deleted');
      link.paced = false;
      const retried = await api('POST', `/images/${started.body.id}/retry`);
      expect(retried.status, JSON.stringify(retried.body)).toBe(202);
      const image = await settled(started.body.id);
      expect(image.phase, JSON.stringify(image.error)).toBe('ready');
      expect(image.copiedFrom).toBeNull();
      expect(image.labels['quantix.io/source-url']).toBe(`${mirror.url}/images/tiny.qcow2`);
      expect(mirror.requestsFor('/images/tiny.qcow2').length).toBeGreaterThan(0);
      expect(sha256(readFileSync(onDisk('p2f', image.location.relPath)))).toBe(sha256(bytes));
    } finally {
      link.restore();
    }
  });

  it('a catalog download goes to the mirror when upstream moved on (no old build is copied)', async () => {
    await addPool('p1c', 'n1');
    const newer = await makeQcow2(root, 'tiny-newer.qcow2', 4);
    mirror.setFile('/images/tiny.qcow2', newer);
    mirror.setFile('/images/SHA256SUMS', sha256Sums({ 'tiny.qcow2': newer }));
    mirror.reset();
    const started = await api('POST', '/images/download', { catalogId: 'tiny', poolId: 'p1c' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.copiedFrom).toBeNull();
    const image = await settled(started.body.id);
    expect(image.phase, JSON.stringify(image.error)).toBe('ready');
    expect(image.checksum.value).toBe(sha256(newer));
    expect(mirror.requestsFor('/images/tiny.qcow2').length).toBeGreaterThan(0);
  });
});
