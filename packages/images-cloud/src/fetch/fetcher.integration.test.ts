/**
 * The HTTP fetcher against a real HTTP server on loopback serving a real qcow2 (qemu-img) and a
 * SHA256SUMS file, with Range, If-Range and ETag — and the failures real mirrors have.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FetchProgress } from '@quantix/core';
import { mountSmallFilesystem } from '@quantix/core/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ImageServer, startImageServer } from '../testing/image-server.js';
import { makeQcow2, makeVmdkDescriptorNaming, sha256, sha256Sums, sha512, VIRTUAL_SIZE } from '../testing/images.js';
import { type CloudFetchResult, type FetchStage, HttpImageFetcher, type HttpImageFetcherOptions } from './fetcher.js';

const run = promisify(execFile);
const IMAGE = '/noble/current/noble-server-cloudimg-amd64.img';
const SUMS = '/noble/current/SHA256SUMS';
// Loopback is denied by the default policy; tests allow it explicitly, as a mirror on a LAN would be.
const LOOPBACK: HttpImageFetcherOptions['policy'] = { allowAddresses: ['127.0.0.0/8'] };

let server: ImageServer;
let fixtures: string;
let image: Buffer;
let otherImage: Buffer;
let dir: string;

function fetcher(options: HttpImageFetcherOptions = {}): HttpImageFetcher {
  return new HttpImageFetcher({ policy: LOOPBACK, retry: { baseDelayMs: 10, maxDelayMs: 50 }, ...options });
}

function request(extra: Partial<Parameters<HttpImageFetcher['fetch']>[0]> = {}) {
  return {
    sourceUrl: `${server.url}${IMAGE}`,
    checksumUrl: `${server.url}${SUMS}`,
    destinationPath: join(dir, 'images', 'ubuntu.qcow2'),
    ...extra,
  };
}

function serveImage(data: Buffer): void {
  server.setFile(IMAGE, data);
  server.setFile(SUMS, sha256Sums({ 'noble-server-cloudimg-amd64.img': data }));
}

function leftovers(path: string): string[] {
  return [`${path}.partial`, `${path}.partial.meta`].filter((p) => existsSync(p));
}

beforeAll(async () => {
  fixtures = mkdtempSync(join(tmpdir(), 'quantix-fetch-fixtures-'));
  [image, otherImage] = await Promise.all([makeQcow2(fixtures, 'a.qcow2', 6), makeQcow2(fixtures, 'b.qcow2', 6)]);
  server = await startImageServer();
});

afterAll(async () => {
  await server?.close();
  rmSync(fixtures, { recursive: true, force: true });
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quantix-fetch-'));
  server.reset();
  serveImage(image);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('HttpImageFetcher against a real HTTP server', () => {
  it('downloads, verifies against SHA256SUMS, records format and virtual size, and reports progress', async () => {
    // Paced over ~250 ms: a rate needs at least 50 ms of samples, and on a quiet machine the
    // small image would otherwise arrive in one go, with no rate to report.
    server.behaviour.bytesPerSecond = Math.ceil(image.length * 4);
    const progress: FetchProgress[] = [];
    const stages: FetchStage[] = [];
    const result = await fetcher({ progressIntervalMs: 0 }).fetch(
      request({ onProgress: (p) => progress.push(p), onStage: (s) => stages.push(s) }),
    );

    const dest = request().destinationPath;
    expect(sha256(readFileSync(dest))).toBe(sha256(image));
    expect(result).toMatchObject({
      path: dest,
      sizeBytes: image.length,
      checksum: { algorithm: 'sha256', value: sha256(image) },
      bytesTransferred: image.length,
      resumed: false,
      format: 'qcow2',
      detectedFormat: 'qcow2',
      virtualSizeBytes: VIRTUAL_SIZE,
      attempts: 1,
      restarts: 0,
      alreadyPresent: false,
    });
    expect(leftovers(dest)).toEqual([]);
    // The checksum file is read first, so a missing line fails before any image byte moves.
    expect(server.requests.map((r) => [r.path, r.status])).toEqual([
      [SUMS, 200],
      [IMAGE, 200],
    ]);
    expect(stages).toEqual(['downloading', 'verifying']);
    const done = progress.map((p) => p.bytesDone);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect(progress.at(-1)).toMatchObject({
      bytesDone: image.length,
      bytesTotal: image.length,
      percent: 100,
      etaSeconds: 0,
    });
    expect(progress.some((p) => (p.bytesPerSecond ?? 0) > 0)).toBe(true);
  });

  it('resumes with Range + If-Range after the connection drops mid-way, fetching only the rest', async () => {
    server.behaviour.dropAfterBytes = Math.floor(image.length / 3);
    const result = await fetcher().fetch(request());

    const gets = server.requestsFor(IMAGE);
    expect(gets).toHaveLength(2);
    expect(gets[0]).toMatchObject({ status: 200, completed: false, range: null });
    // The client asks for the rest from what it had safely written (the bytes the server sent,
    // less any still in flight when the connection dropped).
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]?.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(gets[0]?.bytesSent ?? 0);
    expect(gets[1]).toMatchObject({ status: 206, completed: true, ifRange: server.file(IMAGE)?.etag });
    // The second request fetched only what was missing.
    expect(gets[1]?.bytesSent).toBe(image.length - resumedAt);
    expect(gets[1]?.bytesSent).toBeLessThan(image.length);
    expect(result).toMatchObject({ resumed: true, attempts: 2, bytesTransferred: image.length });
    expect(sha256(readFileSync(result.path))).toBe(sha256(image));
  });

  it('keeps the partial file of a failed download and resumes it in a later call (a new process would do the same)', async () => {
    server.behaviour.dropEveryAfterBytes = Math.floor(image.length / 2);
    const failed = await fetcher({ retry: { attempts: 1 } })
      .fetch(request())
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'DOWNLOAD_FAILED', details: { retryable: true } });
    const dest = request().destinationPath;
    const kept = statSync(`${dest}.partial`).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(Math.floor(image.length / 2));
    expect(existsSync(dest)).toBe(false);

    server.behaviour.dropEveryAfterBytes = null;
    const result = await fetcher().fetch(request());
    expect(result).toMatchObject({ resumed: true, bytesTransferred: image.length - kept });
    expect(server.requestsFor(IMAGE).at(-1)?.bytesSent).toBeLessThan(image.length);
    expect(sha256(readFileSync(dest))).toBe(sha256(image));
    expect(leftovers(dest)).toEqual([]);
  });

  it('starts over when the server ignores Range and answers 200', async () => {
    server.behaviour.dropEveryAfterBytes = 1_000_000;
    await fetcher({ retry: { attempts: 1 } })
      .fetch(request())
      .catch(() => undefined);
    const kept = statSync(`${request().destinationPath}.partial`).size;
    expect(kept).toBeGreaterThan(0);
    server.behaviour.dropEveryAfterBytes = null;
    server.behaviour.ignoreRange = true;

    const result = await fetcher().fetch(request());
    const last = server.requestsFor(IMAGE).at(-1);
    expect(last).toMatchObject({ range: `bytes=${kept}-`, status: 200, bytesSent: image.length });
    expect(result).toMatchObject({ resumed: false, restarts: 1, bytesTransferred: image.length });
    expect(sha256(readFileSync(result.path))).toBe(sha256(image));
  });

  it('starts over when the source changed: If-Range with the old ETag gets the new file', async () => {
    server.behaviour.dropEveryAfterBytes = 2_000_000;
    await fetcher({ retry: { attempts: 1 } })
      .fetch(request())
      .catch(() => undefined);
    const oldEtag = server.file(IMAGE)?.etag;
    const kept = statSync(`${request().destinationPath}.partial`).size;
    server.behaviour.dropEveryAfterBytes = null;
    serveImage(otherImage); // a new publication: new bytes, new ETag, new SHA256SUMS
    expect(server.file(IMAGE)?.etag).not.toBe(oldEtag);

    const result = await fetcher().fetch(request());
    const last = server.requestsFor(IMAGE).at(-1);
    expect(last).toMatchObject({ range: `bytes=${kept}-`, ifRange: oldEtag, status: 200 });
    expect(result).toMatchObject({ resumed: false, restarts: 1, checksum: { value: sha256(otherImage) } });
    expect(sha256(readFileSync(result.path))).toBe(sha256(otherImage));
  });

  it('starts over when a server ignores If-Range and sends a range of the changed file under a new ETag', async () => {
    server.behaviour.dropEveryAfterBytes = 2_000_000;
    await fetcher({ retry: { attempts: 1 } })
      .fetch(request())
      .catch(() => undefined);
    const kept = statSync(`${request().destinationPath}.partial`).size;
    server.behaviour.dropEveryAfterBytes = null;
    server.behaviour.ignoreIfRange = true;
    serveImage(otherImage);

    const result = await fetcher().fetch(request());
    const gets = server
      .requestsFor(IMAGE)
      .slice(1)
      .map((r) => [r.range, r.status]);
    expect(gets).toEqual([
      [`bytes=${kept}-`, 206], // the wrong range, noticed by its new ETag and dropped
      [null, 200],
    ]);
    expect(sha256(readFileSync(result.path))).toBe(sha256(otherImage));
  });

  it('resumes against Last-Modified when the server sends no ETag', async () => {
    server.setFile(IMAGE, image, { etag: null, lastModified: 'Tue, 01 Dec 2026 10:00:00 GMT' });
    server.behaviour.dropAfterBytes = 3_000_000;
    const result = await fetcher().fetch(request());
    expect(server.requestsFor(IMAGE).at(-1)).toMatchObject({
      status: 206,
      range: expect.stringMatching(/^bytes=[1-9]\d*-$/),
      ifRange: 'Tue, 01 Dec 2026 10:00:00 GMT',
    });
    expect(result.resumed).toBe(true);
    expect(sha256(readFileSync(result.path))).toBe(sha256(image));
  });

  it('resumes a server that sends neither ETag nor Last-Modified when the checksum is known; without one it starts over', async () => {
    server.setFile(IMAGE, image, { etag: null, lastModified: null });
    server.behaviour.dropAfterBytes = 3_000_000;
    const result = await fetcher().fetch(request());
    expect(server.requestsFor(IMAGE).map((r) => [r.range === null ? null : 'range', r.ifRange, r.status])).toEqual([
      [null, null, 200],
      ['range', null, 206],
    ]);
    expect(result).toMatchObject({ resumed: true, attempts: 2, bytesTransferred: image.length });
    expect(sha256(readFileSync(result.path))).toBe(sha256(image));

    // Nothing to check the stitched file against: the rest of an unknown version is never asked for.
    server.reset();
    server.setFile(IMAGE, image, { etag: null, lastModified: null });
    server.behaviour.dropAfterBytes = 3_000_000;
    const unverified = await fetcher({ requireChecksum: false }).fetch(
      request({ checksumUrl: null, destinationPath: join(dir, 'images', 'unverified.qcow2') }),
    );
    expect(server.requestsFor(IMAGE).map((r) => [r.range, r.status])).toEqual([
      [null, 200],
      [null, 200],
    ]);
    expect(unverified.resumed).toBe(false);
    expect(sha256(readFileSync(unverified.path))).toBe(sha256(image));
  });

  it('a source without validators that changed while paused: the stitched file fails its checksum, and one whole fetch gets the new one', async () => {
    server.setFile(IMAGE, image, { etag: null, lastModified: null });
    server.behaviour.dropAfterBytes = 3_000_000;
    server.behaviour.dropEveryAfterBytes = 3_000_000;
    const first = await fetcher({ retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 50 } })
      .fetch(request())
      .catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    const kept = statSync(`${request().destinationPath}.partial`).size;
    expect(kept).toBeGreaterThan(0);

    // The mirror now serves another build under the same name, still without validators.
    server.reset();
    server.setFile(IMAGE, otherImage, { etag: null, lastModified: null });
    server.setFile(SUMS, sha256Sums({ 'noble-server-cloudimg-amd64.img': otherImage }));
    const result = await fetcher().fetch(request());
    expect(server.requestsFor(IMAGE).map((r) => [r.range, r.status])).toEqual([
      [`bytes=${kept}-`, 206],
      [null, 200],
    ]);
    expect(sha256(readFileSync(result.path))).toBe(sha256(otherImage));
  });

  it('downloads an answer without Content-Length (chunked), and resumes it after a break', async () => {
    server.behaviour.hideLength = true;
    server.behaviour.dropAfterBytes = 3_000_000;
    const result = await fetcher().fetch(request());
    expect(server.requestsFor(IMAGE).map((r) => [r.range === null ? null : 'range', r.status])).toEqual([
      [null, 200],
      ['range', 206],
    ]);
    expect(result).toMatchObject({ resumed: true, sizeBytes: image.length });
    expect(sha256(readFileSync(result.path))).toBe(sha256(image));
  });

  it('a source of no announced size that fills the pool: POOL_NO_SPACE, and what arrived is removed so the pool has room again', async () => {
    const small = mountSmallFilesystem('2m');
    try {
      server.behaviour.hideLength = true;
      const destinationPath = join(small.path, 'images', 'ubuntu.qcow2');
      const error = await fetcher()
        .fetch(request({ destinationPath }))
        .catch((e: unknown) => e);
      expect(server.requestsFor(IMAGE)[0]?.status).toBe(200);
      expect(error).toMatchObject({
        code: 'POOL_NO_SPACE',
        message: expect.stringMatching(
          /file system was full after \d+ bytes \(the server announced no size\); the partial file was removed$/,
        ),
        details: { errno: 'ENOSPC', retryable: true },
      });
      expect(leftovers(destinationPath)).toEqual([]);
      expect(statfsSync(small.path).bfree).toBe(statfsSync(small.path).blocks);
    } finally {
      small.unmount();
    }
  });

  it('wrong bytes: CHECKSUM_MISMATCH, and neither the file nor its partial is left', async () => {
    server.behaviour.corruptPaths = [IMAGE];
    const error = await fetcher()
      .fetch(request())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'CHECKSUM_MISMATCH',
      details: { expected: { algorithm: 'sha256', value: sha256(image) }, retryable: true },
    });
    const dest = request().destinationPath;
    expect(existsSync(dest)).toBe(false);
    expect(leftovers(dest)).toEqual([]);
  });

  it('verifies sha512 from a BSD-format CHECKSUM file wrapped in a PGP signature (Fedora, Rocky)', async () => {
    const name = 'Fedora-Cloud-Base-Generic-42-1.1.x86_64.qcow2';
    server.setFile(`/fedora/${name}`, image);
    server.setFile(
      '/fedora/CHECKSUM',
      [
        '-----BEGIN PGP SIGNED MESSAGE-----',
        'Hash: SHA256',
        '',
        `# ${name}: ${image.length} bytes`,
        `SHA512 (${name}) = ${sha512(image)}`,
        `SHA256 (Fedora-Cloud-Base-Generic-42-1.1.x86_64.raw.xz) = ${sha256('other')}`,
        '-----BEGIN PGP SIGNATURE-----',
        'iQIzBAEBCAAdFiEE...',
        '-----END PGP SIGNATURE-----',
        '',
      ].join('\r\n'),
    );
    const result = await fetcher().fetch({
      sourceUrl: `${server.url}/fedora/${name}`,
      checksumUrl: `${server.url}/fedora/CHECKSUM`,
      destinationPath: join(dir, 'fedora.qcow2'),
    });
    expect(result.checksum).toEqual({ algorithm: 'sha512', value: sha512(image) });
  });

  it('fails with CHECKSUM_UNAVAILABLE, before fetching the image, when the checksum file does not list it', async () => {
    server.setFile(SUMS, sha256Sums({ 'jammy-server-cloudimg-amd64.img': image }));
    const error = await fetcher()
      .fetch(request())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CHECKSUM_UNAVAILABLE' });
    expect((error as Error).message).toContain('noble-server-cloudimg-amd64.img');
    expect(server.requestsFor(IMAGE)).toEqual([]);
  });

  it('reads what the checksum file lists for a source now, without fetching the image (a golden image’s check)', async () => {
    const ask = { sourceUrl: `${server.url}${IMAGE}`, checksumUrl: `${server.url}${SUMS}` };
    expect(await fetcher().readChecksum(ask)).toEqual({ algorithm: 'sha256', value: sha256(image) });
    serveImage(otherImage);
    expect(await fetcher().readChecksum(ask)).toEqual({ algorithm: 'sha256', value: sha256(otherImage) });
    server.setFile(SUMS, sha256Sums({ 'jammy-server-cloudimg-amd64.img': image }));
    const unlisted = await fetcher()
      .readChecksum(ask)
      .catch((e: unknown) => e);
    expect(unlisted).toMatchObject({
      code: 'CHECKSUM_UNAVAILABLE',
      details: { fileName: 'noble-server-cloudimg-amd64.img' },
    });
    expect(server.requestsFor(IMAGE)).toEqual([]);
    const strict = await new HttpImageFetcher().readChecksum(ask).catch((e: unknown) => e);
    expect(strict).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
  });

  it('refuses an unverifiable request (no checksum, no checksum file) before any request', async () => {
    const error = await fetcher()
      .fetch(request({ checksumUrl: null }))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CHECKSUM_UNAVAILABLE' });
    expect(server.requests).toEqual([]);
  });

  it('uses a checksum given with the request, without a checksum file', async () => {
    const result = await fetcher().fetch(
      request({ checksumUrl: null, checksum: { algorithm: 'sha256', value: sha256(image).toUpperCase() } }),
    );
    expect(result.checksum.value).toBe(sha256(image));
    expect(server.requests.map((r) => r.path)).toEqual([IMAGE]);
  });

  it('cancels through an AbortSignal, keeps the partial, and a later call resumes from it', async () => {
    server.behaviour.bytesPerSecond = 4 * 1024 * 1024;
    const controller = new AbortController();
    const pending = fetcher({ progressIntervalMs: 0 }).fetch(
      request({
        signal: controller.signal,
        onProgress: (p) => {
          if (p.bytesDone > image.length / 4) controller.abort('user changed their mind');
        },
      }),
    );
    await expect(pending).rejects.toMatchObject({ code: 'DOWNLOAD_CANCELLED', details: { retryable: true } });
    const dest = request().destinationPath;
    const kept = statSync(`${dest}.partial`).size;
    expect(kept).toBeGreaterThan(image.length / 4);
    expect(kept).toBeLessThan(image.length);

    server.behaviour.bytesPerSecond = null;
    const result = await fetcher().fetch(request());
    expect(result).toMatchObject({ resumed: true, bytesTransferred: image.length - kept });
    expect(sha256(readFileSync(dest))).toBe(sha256(image));
  });

  it('runs one download for two requests of the same destination; each caller may leave on its own', async () => {
    server.behaviour.bytesPerSecond = 8 * 1024 * 1024;
    const shared = fetcher();
    const leaving = new AbortController();
    const first = shared.fetch(request());
    const second = shared.fetch(request({ signal: leaving.signal }));
    const conflicting = shared.fetch(request({ sourceUrl: `${server.url}/elsewhere/noble-server-cloudimg-amd64.img` }));
    await expect(conflicting).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    leaving.abort();
    await expect(second).rejects.toMatchObject({ code: 'DOWNLOAD_CANCELLED' });
    const result = await first;
    expect(server.requestsFor(IMAGE)).toHaveLength(1);
    expect(sha256(readFileSync(result.path))).toBe(sha256(image));

    // Two callers that both stay get the same result from one transfer.
    server.requests.length = 0;
    const other = { destinationPath: join(dir, 'images', 'again.qcow2') };
    const [a, b] = await Promise.all([shared.fetch(request(other)), shared.fetch(request(other))]);
    expect(a).toEqual(b);
    expect(server.requestsFor(IMAGE)).toHaveLength(1);
  });

  it('limits concurrent downloads: with concurrency 1 the second waits until the first is done', async () => {
    server.behaviour.bytesPerSecond = 16 * 1024 * 1024;
    const limited = fetcher({ concurrency: 1 });
    const order: string[] = [];
    const track = (name: string) => (stage: FetchStage) => order.push(`${name}:${stage}`);
    const results = await Promise.all([
      limited.fetch(request({ destinationPath: join(dir, 'one.qcow2'), onStage: track('one') })),
      limited.fetch(request({ destinationPath: join(dir, 'two.qcow2'), onStage: track('two') })),
    ]);
    expect(order).toEqual(['one:downloading', 'one:verifying', 'two:downloading', 'two:verifying']);
    expect(results.map((r) => r.sizeBytes)).toEqual([image.length, image.length]);
  });

  it('retries 5xx with back-off, but not 4xx', async () => {
    server.behaviour.statusOverrides[IMAGE] = 404;
    const notFound = await fetcher()
      .fetch(request())
      .catch((e: unknown) => e);
    expect(notFound).toMatchObject({ code: 'DOWNLOAD_FAILED', details: { status: 404, retryable: false } });
    expect(server.requestsFor(IMAGE)).toHaveLength(1);

    server.requests.length = 0;
    server.behaviour.statusOverrides[IMAGE] = 503;
    const unavailable = await fetcher({ retry: { attempts: 3, baseDelayMs: 10 } })
      .fetch(request())
      .catch((e: unknown) => e);
    expect(unavailable).toMatchObject({ code: 'DOWNLOAD_FAILED', details: { status: 503, retryable: true } });
    expect(server.requestsFor(IMAGE)).toHaveLength(3);
  });

  it('does not download again what is already in place and verified', async () => {
    const first = await fetcher().fetch(request());
    server.requests.length = 0;
    const second: CloudFetchResult = await fetcher().fetch(request());
    expect(second).toMatchObject({ alreadyPresent: true, bytesTransferred: 0, checksum: first.checksum });
    expect(server.requestsFor(IMAGE)).toEqual([]);
  });

  it('refuses an image that names a backing file (it would read files of the node), leaving nothing', async () => {
    const backed = join(fixtures, 'backed.qcow2');
    writeFileSync(join(fixtures, 'base.raw'), Buffer.alloc(1024 * 1024));
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(fixtures, 'base.raw'), '-F', 'raw', backed]);
    serveImage(readFileSync(backed));
    const error = await fetcher()
      .fetch(request())
      .catch((e: unknown) => e);
    // Refused from its header, before qemu-img (which would open the named file) sees it.
    expect(error).toMatchObject({ code: 'IMAGE_UNSAFE', details: { reason: 'backing-file' } });
    const dest = request().destinationPath;
    expect(existsSync(dest)).toBe(false);
    expect(leftovers(dest)).toEqual([]);
  });

  it('refuses a VMDK descriptor naming a file of the node before qemu-img opens it, leaving nothing', async () => {
    // `qemu-img info` of such a descriptor opens the extent it names (/etc/passwd reads as valid).
    const descriptor = join(fixtures, 'passwd.vmdk');
    await makeVmdkDescriptorNaming(descriptor, '/etc/passwd');
    serveImage(readFileSync(descriptor));
    const error = await fetcher()
      .fetch(request())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IMAGE_UNSAFE', details: { reason: 'vmdk-descriptor' } });
    const dest = request().destinationPath;
    expect(existsSync(dest)).toBe(false);
    expect(leftovers(dest)).toEqual([]);
  });

  it('leaves the file to the caller with inspect: false (an import checks it before qemu-img opens it)', async () => {
    // A VMDK descriptor naming a file that is not there: an inspected fetch refuses it from its
    // header, and one that is not inspected arrives as it is.
    const descriptor = join(fixtures, 'dangling.vmdk');
    await makeVmdkDescriptorNaming(descriptor, join(fixtures, 'no-such-extent.vmdk'));
    serveImage(readFileSync(descriptor));
    const inspected = await fetcher()
      .fetch(request())
      .catch((e: unknown) => e);
    expect(inspected).toMatchObject({ code: 'IMAGE_UNSAFE' });
    const result = await fetcher().fetch(request({ inspect: false }));
    expect(result).toMatchObject({ format: null, detectedFormat: null, virtualSizeBytes: null });
    expect(readFileSync(result.path).equals(readFileSync(descriptor))).toBe(true);
  });
});

describe('source policy, enforced before any request', () => {
  it('refuses loopback under the default policy, without sending anything', async () => {
    const strict = new HttpImageFetcher();
    const error = await strict.fetch(request()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', details: { reason: 'address', address: '127.0.0.1' } });
    expect(server.requests).toEqual([]);
  });

  it.each([
    ['a scheme other than http(s)', 'ftp://127.0.0.1/image.qcow2', {}, 'scheme'],
    ['a file: URL', 'file:///etc/shadow', {}, 'scheme'],
    ['a port not on the allow list', null, { allowPorts: [80, 443] }, 'port'],
    ['a port on the deny list', null, { denyPorts: [0] as number[] }, 'port'],
    ['a host not on the allow list', null, { allowHosts: ['*.ubuntu.com'] }, 'host'],
    ['a host on the deny list', null, { denyHosts: ['127.0.0.1'] }, 'host'],
    [
      'the metadata address, even written as mapped IPv6',
      'http://[::ffff:169.254.169.254]/latest/meta-data/',
      {},
      'address',
    ],
    ['the metadata address written as one decimal number', 'http://2852039166/latest', {}, 'address'],
  ])('refuses %s', async (_name, url, policy, reason) => {
    const denyPorts = (policy as { denyPorts?: number[] }).denyPorts;
    const effective = denyPorts ? { denyPorts: [server.port] } : policy;
    const guarded = fetcher({ policy: { ...LOOPBACK, ...effective } });
    const error = await guarded.fetch(request(url ? { sourceUrl: url } : {})).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', details: { reason } });
    expect(server.requests).toEqual([]);
  });

  it('refuses a host name that resolves to a denied address, before connecting', async () => {
    // localhost resolves to loopback; only 127.0.0.2 is allowed here.
    const guarded = fetcher({ policy: { allowAddresses: ['127.0.0.2'] } });
    const error = await guarded
      .fetch(
        request({
          sourceUrl: `http://localhost:${server.port}${IMAGE}`,
          checksumUrl: null,
          checksum: { algorithm: 'sha256', value: sha256(image) },
        }),
      )
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', details: { reason: 'address' } });
    expect(server.requests).toEqual([]);
  });

  it('checks every redirect hop: a redirect to a denied address is refused, and its target sees nothing', async () => {
    const internal = await startImageServer({ host: '127.0.0.2' });
    try {
      internal.setFile(IMAGE, image);
      server.behaviour.redirects[IMAGE] = `${internal.url}${IMAGE}`;
      const guarded = fetcher({ policy: { allowAddresses: ['127.0.0.1'] } });
      const error = await guarded
        .fetch(request({ checksumUrl: null, checksum: { algorithm: 'sha256', value: sha256(image) } }))
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', details: { address: '127.0.0.2' } });
      expect(server.requestsFor(IMAGE)).toHaveLength(1); // the redirect itself
      expect(internal.requests).toEqual([]);

      // The same redirect under a policy that allows the target is followed.
      const allowed = await fetcher({ policy: { allowAddresses: ['127.0.0.1', '127.0.0.2'] } }).fetch(
        request({ checksumUrl: null, checksum: { algorithm: 'sha256', value: sha256(image) } }),
      );
      expect(allowed.finalUrl).toBe(`${internal.url}${IMAGE}`);
      expect(internal.requestsFor(IMAGE)).toHaveLength(1);
    } finally {
      await internal.close();
    }
  });
});
