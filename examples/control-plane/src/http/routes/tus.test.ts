/**
 * Which replica has a tus upload: the upload id names the replica that created it, so another
 * replica (without the file) answers UPLOAD_ON_OTHER_REPLICA naming it; with the file in a
 * shared staging directory it serves it. An upload that stopped arriving expires. A finished
 * upload is handed over with the SHA-256 of its bytes when they all arrived here in order. Real
 * files in a temporary directory, the real tus server; the UploadService is a stand-in (its size
 * limit, and an adoptStaged that records what it was handed), as no pool or node is here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UploadService } from '@quantix/control-plane';
import { ErrorCode } from '@quantix/core';
import { errorCodeOf, mountSmallFilesystem } from '@quantix/core/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TusUploads } from './tus.js';

describe('TusUploads expiry', () => {
  it('removes an upload that stopped arriving once its time is up, and a resume then finds nothing', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'quantix-tus-expiry-'));
    const tus = new TusUploads({
      uploads: { maxBytes: 1024 * 1024 } as UploadService,
      directory,
      path: '/files',
      logger: pino({ level: 'silent' }),
      // Long enough for the PATCH below to arrive on a loaded machine, short enough to wait for.
      expiryMs: 2000,
      replica: { id: 'cp-a', urlOf: async () => undefined },
    });
    // The tus server itself behind a plain HTTP server (the API's checks are not what is tested here).
    const server = createServer((request, response) => void tus.server.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const created = await fetch(`${base}/files`, {
        method: 'POST',
        headers: { 'tus-resumable': '1.0.0', 'upload-length': '100' },
      });
      expect(created.status).toBe(201);
      const location = new URL(created.headers.get('location') ?? '', base).href;
      const patched = await fetch(location, {
        method: 'PATCH',
        headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
        body: new Uint8Array(40),
      });
      expect(patched.status).toBe(204);
      expect(await readdir(directory)).toHaveLength(2); // the bytes and their .json
      // Swept as the hourly sweep does, until the upload's 2 s are over.
      const deadline = Date.now() + 10_000;
      while ((await tus.sweep()) === 0) {
        if (Date.now() > deadline) throw new Error('the upload never expired');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await readdir(directory)).toEqual([]);
      const head = await fetch(location, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0' } });
      expect([404, 410]).toContain(head.status);
    } finally {
      tus.close();
      server.close();
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('TusUploads on a staging disk that fills', () => {
  it('answers a PATCH that found the disk full with UPLOAD_NO_SPACE (507) in the error shape, and keeps what arrived', async () => {
    // A real 1 MiB file system for the staging directory; the upload is 4 MiB.
    const mounted = mountSmallFilesystem('1m');
    const tus = new TusUploads({
      uploads: { maxBytes: 16 * 1024 * 1024 } as UploadService,
      directory: mounted.path,
      path: '/files',
      logger: pino({ level: 'silent' }),
      replica: { id: 'cp-a', urlOf: async () => undefined },
    });
    const server = createServer((request, response) => void tus.server.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const size = 4 * 1024 * 1024;
      const created = await fetch(`${base}/files`, {
        method: 'POST',
        headers: { 'tus-resumable': '1.0.0', 'upload-length': String(size) },
      });
      expect(created.status).toBe(201);
      const location = new URL(created.headers.get('location') ?? '', base).href;
      const patched = await fetch(location, {
        method: 'PATCH',
        headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
        body: new Uint8Array(size),
      });
      expect(patched.status).toBe(507);
      expect(await patched.json()).toMatchObject({
        error: {
          code: 'UPLOAD_NO_SPACE',
          message: expect.stringMatching(/staging directory: the disk filled/),
          details: {},
        },
      });
      // The upload is still there to resume once there is room, from what reached the disk.
      const head = await fetch(location, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0' } });
      expect(head.status).toBe(200);
      expect(Number(head.headers.get('upload-offset'))).toBeLessThan(size);
    } finally {
      tus.close();
      server.close();
      mounted.unmount();
    }
  });
});

describe('TusUploads.checkHere', () => {
  let directory: string;
  const replicaA = { id: 'cp-a', url: 'http://10.1.0.1:8080' };
  const tusOn = (id: string) =>
    new TusUploads({
      uploads: { maxBytes: 1024 } as UploadService,
      directory,
      path: '/api/v1/uploads/tus',
      logger: pino({ level: 'silent' }),
      replica: { id, urlOf: async (other) => (other === replicaA.id ? replicaA.url : undefined) },
    });
  const idOnA = `${Buffer.from(replicaA.id).toString('base64url')}.0b9a3c0e-1f5e-4b8e-9d6f-2a7c1e4b5d60`;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'quantix-tus-check-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('names the live replica that holds an upload this one does not have', async () => {
    expect(await errorCodeOf(tusOn('cp-b').checkHere(idOnA))).toBe(ErrorCode.UPLOAD_ON_OTHER_REPLICA);
    await expect(tusOn('cp-b').checkHere(idOnA)).rejects.toMatchObject({
      message: expect.stringContaining('cp-a'),
      details: { replicaId: 'cp-a', url: replicaA.url },
    });
  });

  it('lets the request through on the replica that made it, or for a replica no longer alive (tus answers 404)', async () => {
    await expect(tusOn('cp-a').checkHere(idOnA)).resolves.toBeUndefined();
    const idOnGone = `${Buffer.from('cp-gone').toString('base64url')}.0b9a3c0e-1f5e-4b8e-9d6f-2a7c1e4b5d60`;
    await expect(tusOn('cp-b').checkHere(idOnGone)).resolves.toBeUndefined();
  });

  it('serves an upload whose file is here (a staging directory the replicas share)', async () => {
    await writeFile(join(directory, idOnA), 'partial bytes');
    await expect(tusOn('cp-b').checkHere(idOnA)).resolves.toBeUndefined();
  });
});

describe('TusUploads hashing on arrival', () => {
  // The finished upload's SHA-256 is taken from its bytes as they were written, when every byte
  // went through this process in order; otherwise it is left to UploadService, which reads the file.
  // A stand-in service records what it was handed (no pool or node here: nothing is adopted).
  let directory: string;
  const handed: { sha256?: string; fileSha256: string }[] = [];
  const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
  const bytes = randomBytes(3 * 1024 * 1024);

  /** A replica's tus server behind a plain HTTP server; several may share `directory`. */
  const replica = async (id: string) => {
    const tus = new TusUploads({
      uploads: {
        maxBytes: 64 * 1024 * 1024,
        adoptStaged: async (input: { path: string; sha256?: string }) => {
          handed.push({
            ...(input.sha256 ? { sha256: input.sha256 } : {}),
            fileSha256: sha256(await readFile(input.path)),
          });
          return { id: 'image-1' };
        },
      } as unknown as UploadService,
      directory,
      path: '/files',
      logger: pino({ level: 'silent' }),
      replica: { id, urlOf: async () => undefined },
    });
    const server = createServer((request, response) => void tus.server.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
  };
  const patch = (location: string, offset: number, body: Uint8Array) =>
    fetch(location, {
      method: 'PATCH',
      headers: {
        'tus-resumable': '1.0.0',
        'upload-offset': String(offset),
        'content-type': 'application/offset+octet-stream',
      },
      body: new Uint8Array(body),
    });
  const create = async (base: string) => {
    const created = await fetch(`${base}/files`, {
      method: 'POST',
      headers: { 'tus-resumable': '1.0.0', 'upload-length': String(bytes.length) },
    });
    expect(created.status).toBe(201);
    return new URL(created.headers.get('location') ?? '', base).href;
  };

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'quantix-tus-hash-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('hands over the SHA-256 of an upload sent in several PATCHes, the same as its file’s', async () => {
    handed.length = 0;
    const a = await replica('cp-a');
    try {
      const location = await create(a.base);
      const cuts = [0, 1_000_000, 2_500_000, bytes.length];
      for (let i = 0; i < cuts.length - 1; i++) {
        const response = await patch(location, cuts[i] as number, bytes.subarray(cuts[i], cuts[i + 1]));
        expect(response.status).toBe(204);
      }
      expect(handed).toEqual([{ sha256: sha256(bytes), fileSha256: sha256(bytes) }]);
    } finally {
      a.close();
    }
  });

  it('hands over no digest but the file’s after a PATCH cut off mid-body and resumed from the server’s offset', async () => {
    handed.length = 0;
    const a = await replica('cp-a');
    try {
      const location = await create(a.base);
      // A body announced whole, of which 1 MiB arrives before the connection is dropped.
      await new Promise<void>((resolve) => {
        const request = httpRequest(location, {
          method: 'PATCH',
          headers: {
            'tus-resumable': '1.0.0',
            'upload-offset': '0',
            'content-type': 'application/offset+octet-stream',
            'content-length': String(bytes.length),
          },
        });
        request.on('error', () => resolve());
        request.write(bytes.subarray(0, 1024 * 1024), () => setTimeout(() => request.destroy(), 200));
      });
      let offset = 0;
      // The server settles the cut PATCH on its own time: its offset is read until it is there.
      for (let tries = 0; offset === 0 && tries < 100; tries++) {
        const head = await fetch(location, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0' } });
        offset = Number(head.headers.get('upload-offset'));
        if (offset === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(offset).toBeGreaterThan(0);
      expect(offset).toBeLessThan(bytes.length);
      expect((await patch(location, offset, bytes.subarray(offset))).status).toBe(204);
      expect(handed).toHaveLength(1);
      expect(handed[0]?.fileSha256).toBe(sha256(bytes));
      // Either kept in step with the bytes written, or dropped for the file to be read: never another digest.
      if (handed[0]?.sha256 !== undefined) expect(handed[0].sha256).toBe(sha256(bytes));
    } finally {
      a.close();
    }
  });

  it('leaves the hash to the file when another replica (or this one, restarted) took part of the upload', async () => {
    handed.length = 0;
    const [a, b] = [await replica('cp-a'), await replica('cp-b')];
    try {
      const location = await create(a.base);
      expect((await patch(location, 0, bytes.subarray(0, 1_000_000))).status).toBe(204);
      const onB = location.replace(a.base, b.base);
      expect((await patch(onB, 1_000_000, bytes.subarray(1_000_000))).status).toBe(204);
      expect(handed).toEqual([{ fileSha256: sha256(bytes) }]);
    } finally {
      a.close();
      b.close();
    }
  });
});
