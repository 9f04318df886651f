/**
 * Uploads through a real HTTP server into a real pool directory (the @quantix/storage-local
 * backend), recorded in the real image repository; interrupted by real clients.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ErrorCode, type Repositories, type StoragePool } from '@quantix/core';
import { errorCodeOf, TEST_DATABASE_CLIENTS } from '@quantix/core/testing';
import { LocalStorageBackend } from '@quantix/storage-local';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { useTestRepositories } from './__fixtures__/database.js';
import { buildIso, REAL_MEDIA, requireIsoTools } from './__fixtures__/isos.js';
import { ImagesIsoErrorCode } from './errors.js';
import { scanPool } from './scanner.js';
import { removeStaleUploads, UPLOAD_TEMP_PREFIX, type UploadIsoResult, uploadIso } from './upload.js';

let base: string;
let ubuntuIso: Buffer;
const backend = new LocalStorageBackend();

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-upload-'));
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

describe.each(TEST_DATABASE_CLIENTS)('uploadIso on %s', (client) => {
  const repositories = useTestRepositories(client);
  let repos: Repositories;
  let root: string;
  let pool: StoragePool;
  let counter = 0;

  beforeEach(async () => {
    repos = repositories();
    counter += 1;
    root = join(base, `${client}-${counter}`);
    await mkdir(root);
    pool = await repos.pools.create({
      name: `up-${client}-${counter}`,
      type: 'local',
      config: { path: root },
      shared: true,
    });
  });

  const upload = (options: Partial<Parameters<typeof uploadIso>[0]> & Pick<Parameters<typeof uploadIso>[0], 'body'>) =>
    uploadIso({ pool, backend, images: repos.images, fileName: 'ubuntu-24.04.1-live-server-amd64.iso', ...options });

  /** Nothing visible and nothing hidden left in the pool, and no row. */
  async function expectNothingLeft(): Promise<void> {
    expect(await readdir(root, { recursive: true })).toEqual([]);
    expect(await repos.images.count({ poolId: pool.id })).toBe(0);
  }

  it('streams an ISO in, with its checksum, and records it as a ready image', async () => {
    const result = await upload({
      body: chunks(ubuntuIso),
      expectedSize: ubuntuIso.length,
      expectedChecksum: { algorithm: 'sha256', value: sha256(ubuntuIso).toUpperCase() },
      directory: 'uploads',
    });
    const relPath = 'uploads/ubuntu-24.04.1-live-server-amd64.iso';
    expect(result).toMatchObject({
      relPath,
      sizeBytes: ubuntuIso.length,
      checksum: { algorithm: 'sha256', value: sha256(ubuntuIso) },
    });
    const onDisk = await readFile(join(root, relPath));
    expect(onDisk.equals(ubuntuIso)).toBe(true);
    expect(await readdir(join(root, 'uploads'))).toEqual(['ubuntu-24.04.1-live-server-amd64.iso']);
    expect(result.image).toMatchObject({
      phase: 'ready',
      kind: 'iso',
      location: { poolId: pool.id, relPath },
      sizeBytes: ubuntuIso.length,
      checksum: { algorithm: 'sha256', value: sha256(onDisk) },
      os: { distribution: 'ubuntu', version: '24.04' },
      fileModifiedAt: (await stat(join(root, relPath))).mtime,
    });
    // A scan afterwards finds it unchanged: the row recorded what the listing sees.
    expect(await scanPool({ pool, backend, images: repos.images })).toMatchObject({
      unchanged: 1,
      added: 0,
      filesRead: 0,
    });
  });

  it('takes a web ReadableStream as well', async () => {
    const result = await upload({
      body: Readable.toWeb(chunks(ubuntuIso)) as ReadableStream<Uint8Array>,
      fileName: 'web.iso',
    });
    expect(result.sizeBytes).toBe(ubuntuIso.length);
  });

  it('leaves nothing when the stream fails mid-way, not even the directories it made', async () => {
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso, 1024 * 1024) }))).toBe(ErrorCode.UPLOAD_INCOMPLETE);
    await expectNothingLeft();
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso, 1024 * 1024), directory: 'new/sub' }))).toBe(
      ErrorCode.UPLOAD_INCOMPLETE,
    );
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
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), maxBytes: 1024 * 1024 }))).toBe(
      ErrorCode.UPLOAD_TOO_LARGE,
    );
    await expectNothingLeft();
    let pulled = false;
    const body = new Readable({
      read() {
        pulled = true;
        this.push(null);
      },
    });
    expect(await errorCodeOf(upload({ body, maxBytes: 10, expectedSize: 11 }))).toBe(ErrorCode.UPLOAD_TOO_LARGE);
    expect(pulled).toBe(false);
    await expectNothingLeft();
  });

  it('refuses a short upload, a checksum mismatch, and a file that is not an ISO, leaving nothing', async () => {
    expect(
      await errorCodeOf(upload({ body: chunks(ubuntuIso.subarray(0, 1000)), expectedSize: ubuntuIso.length })),
    ).toBe(ErrorCode.UPLOAD_INCOMPLETE);
    expect(
      await errorCodeOf(
        upload({ body: chunks(ubuntuIso), expectedChecksum: { algorithm: 'sha256', value: '0'.repeat(64) } }),
      ),
    ).toBe(ErrorCode.CHECKSUM_MISMATCH);
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
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), directory: '../elsewhere' }))).toBe(
      ErrorCode.PATH_ESCAPES_POOL,
    );
    await expectNothingLeft();
    await writeFile(join(root, 'taken.iso'), 'precious');
    expect(await errorCodeOf(upload({ body: chunks(ubuntuIso), fileName: 'taken.iso' }))).toBe(
      ErrorCode.ALREADY_EXISTS,
    );
    expect(await readFile(join(root, 'taken.iso'), 'utf8')).toBe('precious');
    expect(await readdir(root)).toEqual(['taken.iso']);
  });

  it('removes temporary files of uploads killed long ago, and nothing else', async () => {
    const stale = `${UPLOAD_TEMP_PREFIX}0b6f3a4e-1111-4a4a-8a8a-123456789abc.iso.partial`;
    const fresh = `${UPLOAD_TEMP_PREFIX}0b6f3a4e-2222-4a4a-8a8a-123456789abc.iso.partial`;
    await writeFile(join(root, stale), 'x');
    await writeFile(join(root, fresh), 'x');
    await writeFile(join(root, '.other-hidden'), 'x');
    const old = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await utimes(join(root, stale), old, old);
    expect(await removeStaleUploads({ pool, backend })).toEqual([stale]);
    expect((await readdir(root)).sort()).toEqual([fresh, '.other-hidden'].sort());
  });
});

describe('uploads over HTTP', () => {
  const repositories = useTestRepositories('pglite');
  let repos: Repositories;
  let server: Server;
  let port: number;
  let root: string;
  let pool: StoragePool;
  let pending: Promise<UploadIsoResult> | undefined;

  beforeAll(async () => {
    repos = repositories();
    root = join(base, 'http-pool');
    await mkdir(root);
    pool = await repos.pools.create({ name: 'http', type: 'local', config: { path: root }, shared: true });
    // What a control plane's upload endpoint does: hand the request body to uploadIso.
    server = createServer((req, res) => {
      const fileName = decodeURIComponent((req.url ?? '/').slice(1));
      const size = req.headers['content-length'];
      pending = uploadIso({
        pool,
        backend,
        images: repos.images,
        fileName,
        body: req,
        expectedSize: size === undefined ? undefined : Number(size),
      });
      pending.then(
        (result) =>
          res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ relPath: result.relPath })),
        (error) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ code: error.code })),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  afterAll(() => {
    server?.close();
  });

  it('accepts a complete upload', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/${encodeURIComponent('Ubuntu Server 24.04.iso')}`, {
      method: 'PUT',
      body: ubuntuIso,
    });
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ relPath: 'Ubuntu Server 24.04.iso' });
    expect((await repos.images.getByLocation({ poolId: pool.id, relPath: 'Ubuntu Server 24.04.iso' }))?.phase).toBe(
      'ready',
    );
  });

  it('leaves no file and no row when the client disconnects mid-upload, and a scan meanwhile sees nothing', async () => {
    pending = undefined;
    const client = request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: '/interrupted.iso',
      headers: { 'content-length': String(ubuntuIso.length) },
    });
    client.on('error', () => undefined); // we are the ones cutting it off
    client.write(ubuntuIso.subarray(0, 2 * 1024 * 1024));
    // Wait until the server is writing the hidden temporary file.
    for (let i = 0; i < 200 && !(await readdir(root)).some((n) => n.startsWith(UPLOAD_TEMP_PREFIX)); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await readdir(root)).some((n) => n.startsWith(UPLOAD_TEMP_PREFIX))).toBe(true);
    const during = await scanPool({ pool, backend, images: repos.images });
    expect(during).toMatchObject({ listed: 1, added: 0 }); // only the earlier complete upload
    client.destroy();
    const error = await (pending as unknown as Promise<unknown>).catch((e) => e);
    expect(error).toMatchObject({ code: ErrorCode.UPLOAD_INCOMPLETE });
    expect(await readdir(root)).toEqual(['Ubuntu Server 24.04.iso']);
    expect(await repos.images.getByLocation({ poolId: pool.id, relPath: 'interrupted.iso' })).toBeUndefined();
  });
});
