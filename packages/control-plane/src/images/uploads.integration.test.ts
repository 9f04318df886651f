/**
 * ISO uploads on the path that runs: UploadService (as createControlPlane builds it) stages the
 * bytes, and a real NodeAgent — storage-local pool, images-cloud's HTTP fetcher — fetches the
 * staged file and stores it, on PostgreSQL and PGlite. The staged file is served by a plain HTTP
 * server doing what the example app's staged-upload route does (open with the one-time token,
 * stream); the WebSocket between hub and node is the in-process pipe of __fixtures__.
 *
 * These are the assertions of images-iso's upload.integration.test.ts (uploadIso, a second
 * upload path that never ran, now deleted), moved onto UploadService.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  createQuantix,
  ErrorCode,
  errorCodeInfo,
  FileInspectorToken,
  type Image,
  type Quantix,
  type StoragePool,
} from '@quantix/core';
import {
  createTestDatabase,
  errorCodeOf,
  mountSmallFilesystem,
  TEST_DATABASE_CLIENTS,
  type TestDatabase,
} from '@quantix/core/testing';
import { HttpImageFetcher } from '@quantix/images-cloud';
import { createImagesIsoPlugin, ImagesIsoErrorCode } from '@quantix/images-iso';
import { buildIso, REAL_MEDIA, requireIsoTools } from '@quantix/images-iso/testing';
import type { NodeAgent } from '@quantix/node-runtime';
import { storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type InProcessLink, startPoolNode } from '../__fixtures__/in-process-node.js';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';
import { ControlPlaneErrorCode } from '../errors.js';
import { UploadService } from './uploads.js';

let base: string;
let ubuntuIso: Buffer;

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-uploads-'));
  // Large enough that an upload takes many chunks.
  const path = await buildIso(join(base, 'ubuntu.iso'), { ...REAL_MEDIA.ubuntuServer2404, padBytes: 4 * 1024 * 1024 });
  ubuntuIso = await readFile(path);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A stream of `data` in 64 KiB chunks that fails after `failAfter` bytes, as a dropped client does. */
function chunks(data: Buffer, failAfter?: number): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (failAfter !== undefined && offset >= failAfter) {
        this.destroy(new Error('client went away'));
        return;
      }
      if (offset >= data.length) {
        this.push(null);
        return;
      }
      this.push(data.subarray(offset, offset + 65536));
      offset += 65536;
    },
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe.each(TEST_DATABASE_CLIENTS)('UploadService on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;
  let staging: string;
  let server: Server;
  let root: string;
  let pool: StoragePool;
  let nodeId: string;
  let agent: NodeAgent;
  let link: InProcessLink;
  let counter = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({
      database: testDb.config,
      plugins: [storageLocalPlugin, createImagesIsoPlugin({ osinfo: false })],
    });
    staging = join(base, `${client}-staging`);
    await mkdir(staging, { recursive: true });
    // What the example app's GET /uploads/:id does: the one-time token opens the staged file.
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const id = url.pathname.split('/').pop() ?? '';
      cp.uploads.open(id, url.searchParams.get('token') ?? '').then(
        async (staged) => {
          res.writeHead(200, { 'content-length': await cp.uploads.size(staged) });
          cp.uploads.stream(staged).pipe(res);
        },
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    cp = createControlPlane({ quantix, stagingDir: staging, publicUrl: () => url });
    await cp.start();
  });

  afterAll(async () => {
    await cp?.close();
    server?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  beforeEach(async () => {
    counter += 1;
    root = join(base, `${client}-${counter}`);
    await mkdir(root);
    ({ nodeId, pool, agent, link } = await startPoolNode({
      hub: cp.hub,
      repositories: quantix.repositories,
      name: `up-${client}-${counter}`,
      root,
      allowedRoot: base,
      agent: { fetchers: [new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } })] },
    }));
  });

  afterEach(async () => {
    link.close();
    await agent.close();
  });

  const upload = (options: Partial<Parameters<UploadService['receive']>[0]> & { body: Readable }) =>
    cp.uploads.receive({ poolId: pool.id, fileName: 'ubuntu-24.04.1-live-server-amd64.iso', ...options });

  const settled = async (id: string): Promise<Image> => {
    const until = Date.now() + 30_000;
    for (;;) {
      const image = await quantix.repositories.images.require(id);
      if (image.phase === 'ready' || image.phase === 'error') return image;
      if (Date.now() > until) throw new Error(`image ${id} still ${image.phase}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  /** An upload service of its own on this test's database, hub and staging directory. */
  const uploadService = (
    options: Pick<ConstructorParameters<typeof UploadService>[0], 'publicUrl' | 'inspectors' | 'maxBytes'> & {
      stagingDir?: string;
    },
  ) =>
    new UploadService({
      repositories: quantix.repositories,
      hub: cp.hub,
      logger: quantix.logger,
      stagingDir: staging,
      ...options,
    });

  /** Nothing in the pool, nothing staged, and no row. */
  async function expectNothingLeft(): Promise<void> {
    expect(await readdir(root, { recursive: true })).toEqual([]);
    expect(await readdir(staging)).toEqual([]);
    expect(await quantix.repositories.images.count({ poolId: pool.id })).toBe(0);
  }

  it('streams an ISO in, checked against the SHA-256 given, and the node stores it as a ready image', async () => {
    const image = await upload({
      body: chunks(ubuntuIso),
      expectedSize: ubuntuIso.length,
      // Any case: a digest is compared as a number.
      expectedSha256: sha256(ubuntuIso).toUpperCase(),
    });
    // Beside the downloaded ISOs, in the pool's iso/ folder.
    const relPath = 'iso/ubuntu-24.04.1-live-server-amd64.iso';
    expect(image).toMatchObject({
      kind: 'iso',
      location: { poolId: pool.id, relPath },
      sizeBytes: ubuntuIso.length,
      checksum: { algorithm: 'sha256', value: sha256(ubuntuIso) },
      os: { distribution: 'ubuntu', version: '24.04' },
    });
    const ready = await settled(image.id);
    expect(ready).toMatchObject({ phase: 'ready', sizeBytes: ubuntuIso.length, error: null });
    expect((await readFile(join(root, relPath))).equals(ubuntuIso)).toBe(true);
    expect(await readdir(root, { recursive: true })).toEqual(['iso', relPath]);
    expect(await readdir(staging)).toEqual([]); // the staged copy is gone once the node has it

    // A scan afterwards keeps the one row, ready, with what the upload recorded.
    await cp.hub.request(nodeId, { op: 'pool.scan', poolId: pool.id, content: 'iso' });
    expect(await quantix.repositories.images.list({ poolId: pool.id })).toEqual([
      expect.objectContaining({ id: image.id, phase: 'ready', checksum: image.checksum, os: image.os }),
    ]);
  });

  it('records an uploaded ISO whose volume id holds terminal escapes with them replaced (U+FFFD)', async () => {
    const evil = await readFile(
      await buildIso(join(base, `escapes-${client}.iso`), { volumeId: 'EVIL\x1b[2J\x1b]0;pwned\x07X' }),
    );
    const image = await upload({ body: chunks(evil), fileName: 'escapes.iso' });
    expect(image.labels['iso.quantix.io/volume-id']).toBe('EVIL\uFFFD[2J\uFFFD]0;pwned\uFFFDX');
    expect(await settled(image.id)).toMatchObject({ phase: 'ready' });
  });

  it('takes a web ReadableStream as well (adapted, as a fetch body would be)', async () => {
    const web = Readable.toWeb(chunks(ubuntuIso)) as ReadableStream<Uint8Array>;
    const image = await upload({ body: Readable.fromWeb(web as never), fileName: 'web.iso' });
    expect(image.sizeBytes).toBe(ubuntuIso.length);
    expect(await settled(image.id)).toMatchObject({ phase: 'ready' });
  });

  it('marks the row error and keeps no staged copy when the node cannot fetch the upload', async () => {
    // The node is sent to an address where nothing listens (port 1), as when the control plane's
    // public URL is wrong: its fetch fails, and the staged bytes go before the row settles.
    const unreachable = uploadService({
      publicUrl: () => 'http://127.0.0.1:1',
      inspectors: quantix.getAll(FileInspectorToken),
    });
    const image = await unreachable.receive({ poolId: pool.id, fileName: 'unfetched.iso', body: chunks(ubuntuIso) });
    const failed = await settled(image.id);
    expect(failed).toMatchObject({ phase: 'error', error: { retryable: false } });
    expect(failed.error?.message).toMatch(/^the node could not store the upload: /);
    // The one-time token in the URL the node was given is not kept in the row.
    expect(failed.error?.message).toMatch(/ECONNREFUSED/);
    expect(failed.error?.message).toMatch(/token=\[redacted\]/);
    expect(await readdir(staging)).toEqual([]);
    // The folder the node made for it, and no file.
    expect(await readdir(root, { recursive: true })).toEqual(['iso']);
  });

  it('leaves nothing when the stream fails mid-way: UPLOAD_INCOMPLETE', async () => {
    const error = await upload({ body: chunks(ubuntuIso, 1024 * 1024) }).catch((e) => e);
    expect(error).toMatchObject({ code: ErrorCode.UPLOAD_INCOMPLETE });
    expect(error.message).toMatch(/cut off after \d+ bytes: client went away/);
    await expectNothingLeft();
  });

  it('leaves nothing when aborted mid-way', async () => {
    const controller = new AbortController();
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= 1024 * 1024) controller.abort(); // the user pressed cancel a megabyte in
        this.push(ubuntuIso.subarray(sent, sent + 65536));
        sent += 65536;
      },
    });
    expect(await errorCodeOf(upload({ body, signal: controller.signal }))).toBe(ErrorCode.UPLOAD_INCOMPLETE);
    await expectNothingLeft();
  });

  it('refuses more bytes than the limit, and an announced size over it before reading anything', async () => {
    const small = uploadService({ publicUrl: () => '', inspectors: [], maxBytes: 1024 * 1024 });
    const receive = (body: Readable, expectedSize?: number) =>
      small.receive({
        poolId: pool.id,
        fileName: 'big.iso',
        body,
        ...(expectedSize !== undefined ? { expectedSize } : {}),
      });
    expect(await errorCodeOf(receive(chunks(ubuntuIso)))).toBe(ErrorCode.UPLOAD_TOO_LARGE);
    await expectNothingLeft();
    let pulled = false;
    const body = new Readable({
      read() {
        pulled = true;
        this.push(null);
      },
    });
    expect(await errorCodeOf(receive(body, 1024 * 1024 + 1))).toBe(ErrorCode.UPLOAD_TOO_LARGE);
    expect(pulled).toBe(false);
    await expectNothingLeft();
  });

  it('a staging disk without room: UPLOAD_NO_SPACE (507) before a byte is read, or when it fills mid-way; nothing left', async () => {
    // A real small filesystem for the staging directory: 2 MiB, the ISO over 4 MiB.
    const mounted = mountSmallFilesystem('2m');
    try {
      const small = uploadService({ publicUrl: () => '', inspectors: [], stagingDir: mounted.path });
      let pulled = false;
      const body = new Readable({
        read() {
          pulled = true;
          this.push(null);
        },
      });
      const early = await small
        .receive({ poolId: pool.id, fileName: 'big.iso', body, expectedSize: ubuntuIso.length })
        .catch((e) => e);
      expect(early).toMatchObject({
        code: ControlPlaneErrorCode.UPLOAD_NO_SPACE,
        details: { sizeBytes: ubuntuIso.length, availableBytes: expect.any(Number) },
      });
      expect(early.message).toMatch(
        /^No room to stage the upload in the control plane's staging directory: the upload is \d+ bytes and \d+ are free there/,
      );
      expect(errorCodeInfo(early.code)?.status).toBe(507);
      expect(pulled).toBe(false);

      // No size announced (a chunked body): the disk fills while the bytes arrive.
      const midway = await small
        .receive({ poolId: pool.id, fileName: 'chunked.iso', body: chunks(ubuntuIso) })
        .catch((e) => e);
      expect(midway).toMatchObject({ code: ControlPlaneErrorCode.UPLOAD_NO_SPACE });
      expect(midway.message).toMatch(/the disk filled after \d+ bytes/);
      expect(await readdir(mounted.path)).toEqual([]);
      await expectNothingLeft();
    } finally {
      mounted.unmount();
    }
  });

  it('a pool without room: POOL_NO_SPACE (507) before a byte is read, as the node reads its free space; nothing left', async () => {
    // The pool on a real 2 MiB file system, on a node of its own; the ISO is over 4 MiB.
    const mounted = mountSmallFilesystem('2m');
    await mkdir(join(mounted.path, 'pool'));
    const small = await startPoolNode({
      hub: cp.hub,
      repositories: quantix.repositories,
      name: `small-${client}-${counter}`,
      root: join(mounted.path, 'pool'),
      allowedRoot: mounted.path,
      agent: { fetchers: [new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } })] },
    });
    try {
      let pulled = false;
      const body = new Readable({
        read() {
          pulled = true;
          this.push(null);
        },
      });
      const refused = await cp.uploads
        .receive({ poolId: small.pool.id, fileName: 'big.iso', body, expectedSize: ubuntuIso.length })
        .catch((e) => e);
      expect(refused).toMatchObject({
        code: ErrorCode.POOL_NO_SPACE,
        details: {
          poolId: small.pool.id,
          nodeId: small.nodeId,
          sizeBytes: ubuntuIso.length,
          availableBytes: expect.any(Number),
        },
      });
      expect(refused.details.availableBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
      expect(refused.message).toMatch(
        /^Pool small-\S+ has no room for the upload: it is \d+ bytes and \d+ are free there/,
      );
      expect(errorCodeInfo(refused.code)?.status).toBe(507);
      expect(pulled).toBe(false);
      expect(await readdir(join(mounted.path, 'pool'))).toEqual([]);
      expect(await readdir(staging)).toEqual([]);
      // What fits is taken, into the same pool.
      const smallIso = await readFile(
        await buildIso(join(base, `small-${client}.iso`), { ...REAL_MEDIA.ubuntuServer2404, padBytes: 0 }),
      );
      expect(smallIso.length).toBeLessThan(refused.details.availableBytes);
      const fits = await cp.uploads.receive({
        poolId: small.pool.id,
        fileName: 'small.iso',
        body: chunks(smallIso),
        expectedSize: smallIso.length,
      });
      expect(await settled(fits.id)).toMatchObject({ phase: 'ready', error: null });
    } finally {
      await small.close();
      mounted.unmount();
    }
  });

  it('refuses a short upload, a checksum mismatch, and a file that is not an ISO, leaving nothing', async () => {
    expect(
      await errorCodeOf(upload({ body: chunks(ubuntuIso.subarray(0, 1000)), expectedSize: ubuntuIso.length })),
    ).toBe(ErrorCode.UPLOAD_INCOMPLETE);
    const mismatch = await upload({ body: chunks(ubuntuIso), expectedSha256: '0'.repeat(64) }).catch((e) => e);
    expect(mismatch).toMatchObject({
      code: ErrorCode.CHECKSUM_MISMATCH,
      details: { expected: '0'.repeat(64), actual: sha256(ubuntuIso) },
    });
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), expectedSha256: 'not-a-digest' }))).toBe(
      ErrorCode.INVALID_INPUT,
    );
    expect(await errorCodeOf(upload({ body: chunks(Buffer.from('#!/bin/sh\necho not an iso\n')) }))).toBe(
      ImagesIsoErrorCode.ISO_NOT_ISO9660,
    );
    // A truncated ISO with its volume descriptors intact is refused too.
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso.subarray(0, 2 * 1024 * 1024)) }))).toBe(
      ImagesIsoErrorCode.ISO_TRUNCATED,
    );
    await expectNothingLeft();
  });

  it('refuses bad names and never overwrites an existing file', async () => {
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), fileName: '../escape.iso' }))).toBe(
      ErrorCode.INVALID_INPUT,
    );
    await expectNothingLeft();
    // A file no row knows of (copied in by hand, not scanned yet): the node is asked first.
    await mkdir(join(root, 'iso'));
    await writeFile(join(root, 'iso/taken.iso'), 'precious');
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), fileName: 'taken.iso' }))).toBe(
      ErrorCode.ALREADY_EXISTS,
    );
    expect(await readFile(join(root, 'iso/taken.iso'), 'utf8')).toBe('precious');
    expect(await readdir(root, { recursive: true })).toEqual(['iso', 'iso/taken.iso']);
    expect(await readdir(staging)).toEqual([]);
    // A name a row already has.
    const first = await upload({ body: chunks(ubuntuIso), fileName: 'once.iso' });
    await settled(first.id);
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), fileName: 'once.iso' }))).toBe(ErrorCode.ALREADY_EXISTS);
  });

  it('removes staged files a previous run left (at start), and nothing else', async () => {
    const partial = `${randomUUID()}.partial`;
    const complete = `${randomUUID()}.iso`;
    await writeFile(join(staging, partial), 'half');
    await writeFile(join(staging, complete), 'whole, but no node will ever fetch it: its token died');
    await writeFile(join(staging, 'not-ours.txt'), 'x');
    expect((await cp.uploads.removeLeftovers()).sort()).toEqual([complete, partial].sort());
    expect(await readdir(staging)).toEqual(['not-ours.txt']);
    await rm(join(staging, 'not-ours.txt'));
    // createControlPlane's start() does it.
    await writeFile(join(staging, partial), 'half');
    await cp.start();
    expect(await readdir(staging)).toEqual([]);
  });

  it('over HTTP: leaves no file and no row when the client disconnects mid-upload, and a scan meanwhile sees nothing', async () => {
    // What the example app's upload route does: hand the request body and its Content-Length over.
    let pending: Promise<Image> | undefined;
    const front = createServer((req, res) => {
      pending = upload({ body: req, fileName: 'interrupted.iso', expectedSize: Number(req.headers['content-length']) });
      pending.then(
        () => res.writeHead(201).end(),
        () => res.writeHead(400).end(),
      );
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    try {
      const clientRequest = request({
        host: '127.0.0.1',
        port: (front.address() as AddressInfo).port,
        method: 'PUT',
        path: '/',
        headers: { 'content-length': String(ubuntuIso.length) },
      });
      clientRequest.on('error', () => undefined); // we are the ones cutting it off
      clientRequest.write(ubuntuIso.subarray(0, 2 * 1024 * 1024));
      // Wait until the bytes are being staged.
      for (let i = 0; i < 300 && !(await readdir(staging).catch(() => [])).some((n) => n.endsWith('.partial')); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect((await readdir(staging)).some((n) => n.endsWith('.partial'))).toBe(true);
      await cp.hub.request(nodeId, { op: 'pool.scan', poolId: pool.id, content: 'iso' });
      expect(await quantix.repositories.images.count({ poolId: pool.id })).toBe(0);
      clientRequest.destroy();
      const error = await (pending as Promise<Image>).catch((e) => e);
      expect(error).toMatchObject({ code: ErrorCode.UPLOAD_INCOMPLETE });
      await expectNothingLeft();
    } finally {
      front.close();
    }
  });
});
