/**
 * Image export through the whole chain, with real parts: the all-in-one control plane (built
 * dist), its node daemon connected over a real WebSocket, a real pool directory holding a qcow2
 * the node downloaded from a real HTTP mirror. The bytes go node → control plane over the
 * channel the node dials back, then to an HTTP client: a whole download and a resumed one
 * must hash to the image's checksum, a client that leaves mid-stream must not leave the node
 * reading, and ids, ranges and credentials an attacker picks are refused with stable codes.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, type TestSystem, waitFor } from './harness.js';
import { QUANTIX } from './processes.js';
import { launchChromium } from './ui/browser.js';
import { ensureUiBuilt } from './ui/helpers.js';

let system: TestSystem;
// biome-ignore lint/suspicious/noExplicitAny: API answers are checked field by field
let image: any;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** GET/HEAD of the image's content with the API token (or none) and any headers. */
function content(
  id: string,
  init: { method?: string; headers?: Record<string, string>; token?: string | null; query?: string } = {},
) {
  const token = init.token === undefined ? system.token : init.token;
  return fetch(`${system.url}/api/v1/images/${id}/content${init.query ?? ''}`, {
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers },
  });
}

/** How many descriptors this process (where the all-in-one node runs) holds open on `path`. */
async function openDescriptors(path: string): Promise<number> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target === path).length;
}

beforeAll(async () => {
  system = await startSystem({ imageMiB: 24 });
  const { body } = await system.api('GET', `/images?catalogId=${system.catalog.readyId}`);
  const { body: withPath } = await system.api('GET', `/images/${body.images[0].id}?nodeId=${system.nodeId}`);
  image = withPath;
}, 300_000);

afterAll(async () => {
  await system?.stop();
});

describe('GET /images/:id/content', () => {
  it('streams the whole file with its size, ETag, checksum headers and a safe attachment name', async () => {
    const response = await content(image.id);
    expect(response.status).toBe(200);
    const body = new Uint8Array(await response.arrayBuffer());
    expect(body.length).toBe(image.sizeBytes);
    expect(sha256(body)).toBe(image.checksum.value);
    expect(response.headers.get('content-length')).toBe(String(image.sizeBytes));
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('x-checksum-sha256')).toBe(image.checksum.value);
    expect(response.headers.get('repr-digest')).toBe(
      `sha-256=:${Buffer.from(image.checksum.value, 'hex').toString('base64')}:`,
    );
    expect(response.headers.get('etag')).toBe(`"sha256-${image.checksum.value}"`);
    expect(response.headers.get('content-disposition')).toBe(
      `attachment; filename="${image.location.relPath.split('/').pop()}"; filename*=UTF-8''${image.location.relPath.split('/').pop()}`,
    );
  });

  it('resumes with Range and If-Range: a cut-off download and its rest hash to the checksum', async () => {
    const size = image.sizeBytes as number;
    // A client that stops after some bytes, as a download whose connection broke.
    const controller = new AbortController();
    const first = await fetch(`${system.url}/api/v1/images/${image.id}/content`, {
      headers: { authorization: `Bearer ${system.token}` },
      signal: controller.signal,
    });
    const etag = first.headers.get('etag') as string;
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    const head: Uint8Array[] = [];
    let got = 0;
    while (got < 1024 * 1024) {
      const { value, done } = await reader.read();
      if (done) break;
      head.push(value);
      got += value.length;
    }
    controller.abort();
    const rest = await content(image.id, { headers: { range: `bytes=${got}-`, 'if-range': etag } });
    expect(rest.status).toBe(206);
    expect(rest.headers.get('content-range')).toBe(`bytes ${got}-${size - 1}/${size}`);
    expect(rest.headers.get('content-length')).toBe(String(size - got));
    const whole = Buffer.concat([...head, new Uint8Array(await rest.arrayBuffer())]);
    expect(sha256(whole)).toBe(image.checksum.value);

    // A suffix range, and an If-Range that no longer matches (the whole file instead).
    const tail = await content(image.id, { headers: { range: 'bytes=-100' } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(whole.subarray(size - 100))).toBe(true);
    const stale = await content(image.id, { method: 'HEAD', headers: { range: 'bytes=10-', 'if-range': '"other"' } });
    expect(stale.status).toBe(200);
  });

  it('answers HEAD with the headers only, without asking the node for bytes', async () => {
    const response = await content(image.id, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(image.sizeBytes));
    expect(response.headers.get('x-checksum-sha256')).toBe(image.checksum.value);
    expect((await response.arrayBuffer()).byteLength).toBe(0);
  });

  it('does not leave the node reading when the client goes away mid-stream', async () => {
    expect(image.path).toMatch(/\//);
    const controller = new AbortController();
    const response = await fetch(`${system.url}/api/v1/images/${image.id}/content`, {
      headers: { authorization: `Bearer ${system.token}` },
      signal: controller.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    // The node holds the file open while it streams (the client has not read most of it).
    expect(await openDescriptors(image.path)).toBeGreaterThan(0);
    controller.abort();
    await waitFor(async () => (await openDescriptors(image.path)) === 0, 'the node to close the exported file', 10_000);
  });

  it('refuses ids, ranges and credentials an attacker picks, with stable codes', async () => {
    const size = image.sizeBytes as number;
    const unsatisfiable = await content(image.id, { headers: { range: `bytes=${size}-` } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers.get('content-range')).toBe(`bytes */${size}`);
    expect((await unsatisfiable.json()).error.code).toBe('RANGE_NOT_SATISFIABLE');
    expect((await content(image.id, { headers: { range: 'bytes=-0' } })).status).toBe(416);
    // A range this server does not do (several, another unit) gets the whole file, as RFC 9110 allows.
    const several = await content(image.id, { method: 'HEAD', headers: { range: 'bytes=0-1,5-9' } });
    expect(several.status).toBe(200);

    for (const id of ['no-such-image', '..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd']) {
      const response = await content(id);
      expect(response.status, id).toBe(404);
      expect((await response.json()).error.code, id).toBe('NOT_FOUND');
    }
    const anonymous = await content(image.id, { token: null });
    expect(anonymous.status).toBe(401);
    expect((await content(image.id, { token: 'wrong-token' })).status).toBe(401);
    expect((await content(image.id, { token: null, query: '?ticket=guessed' })).status).toBe(401);

    // A download ticket opens its image, without the API token, and no other.
    const { status, body: issued } = await system.api('POST', `/images/${image.id}/content/tickets`);
    expect(status).toBe(201);
    const byTicket = await fetch(`${system.url}${issued.path}`, { method: 'HEAD' });
    expect(byTicket.status).toBe(200);
    const other = await content('no-such-image', { token: null, query: `?ticket=${issued.ticket}` });
    expect(other.status).toBe(401);
  });

  it('refuses an image that is not ready with IMAGE_NOT_READY', async () => {
    // The mirror is paced: the second catalog image stays downloading long enough to ask.
    const started = await system.api('POST', '/images/download', {
      catalogId: system.catalog.notDownloadedId,
      poolId: system.poolId,
    });
    expect(started.status).toBe(202);
    await waitFor(
      async () => (await system.api('GET', `/images/${started.body.id}`)).body.phase === 'downloading',
      'the download to start',
    );
    const response = await content(started.body.id);
    expect(response.status).toBe(409);
    expect((await response.json()).error.code).toBe('IMAGE_NOT_READY');
  });
});

describe('quantix images export', () => {
  /** One run of the built CLI: exit code, stdout, stderr. */
  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [QUANTIX, ...args],
        { env: { ...process.env, QUANTIX_URL: system.url, QUANTIX_TOKEN: system.token } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('writes the image to a file through FILE.part, resumes a broken export with Range, and checks the checksum', async () => {
    const file = join(system.dataDir, 'exported.qcow2');
    const part = `${file}.part`;
    const whole = await cli(['images', 'export', image.id, '-o', file]);
    expect(whole, whole.stderr).toMatchObject({ code: 0 });
    expect(sha256(await readFile(file))).toBe(image.checksum.value);
    expect(existsSync(part)).toBe(false);
    // Its progress, off a terminal a line a tenth (not one per chunk or percent), names the file it writes.
    const progress = whole.stderr.split('\n').filter((line) => line.startsWith('exported.qcow2 ['));
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.length).toBeLessThanOrEqual(11);
    expect(whole.stderr.split('\n').at(-2)).toMatch(/^exported\.qcow2 \[#+\] 100% /);
    // Run again: the file is the image already, and nothing is fetched.
    const again = await cli(['images', 'export', image.id, '-o', file]);
    expect(again, again.stderr).toMatchObject({ code: 0 });
    expect(again.stdout).toContain('already this image');
    expect(again.stderr).toBe('');

    // An export that broke after 1 MiB left its part, and no file: the rest is fetched, not the whole again.
    await rm(file);
    const partial = await content(image.id, { headers: { range: 'bytes=0-1048575' } });
    await writeFile(part, new Uint8Array(await partial.arrayBuffer()));
    const resumed = await cli(['images', 'export', image.id, '-o', file]);
    expect(resumed, resumed.stderr).toMatchObject({ code: 0 });
    expect(resumed.stdout).toContain('resumed at 1048576');
    expect(resumed.stdout).toContain('(verified)');
    expect(sha256(await readFile(file))).toBe(image.checksum.value);
    expect(existsSync(part)).toBe(false);

    // A part that is not this image's beginning is found out at the end, thrown away and fetched whole.
    await rm(file);
    await writeFile(part, Buffer.alloc(4096, 1));
    const wrongPart = await cli(['images', 'export', image.id, '-o', file]);
    expect(wrongPart, wrongPart.stderr).toMatchObject({ code: 0 });
    expect(wrongPart.stdout).not.toContain('resumed');
    expect(sha256(await readFile(file))).toBe(image.checksum.value);
  });

  it('leaves a file that is not the image alone, unless --force, and then replaces it only once whole', async () => {
    const file = join(system.dataDir, 'notes.txt');
    const mine = Buffer.from('a file of the user’s own\n');
    await writeFile(file, mine);
    const refused = await cli(['images', 'export', image.id, '-o', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ALREADY_EXISTS');
    expect(refused.stderr).toContain('--force');
    expect(await readFile(file)).toEqual(mine);
    expect(existsSync(`${file}.part`)).toBe(false);

    const forced = await cli(['images', 'export', image.id, '-o', file, '--force']);
    expect(forced, forced.stderr).toMatchObject({ code: 0 });
    expect(sha256(await readFile(file))).toBe(image.checksum.value);
  });
});

describe('the Images page', () => {
  it('downloads a ready image from its Download button, as the browser saves it', async () => {
    ensureUiBuilt();
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ acceptDownloads: true });
      const page = await context.newPage();
      await page.goto(`${system.url}/images#token=${encodeURIComponent(system.token)}`);
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 30_000 }),
        page.getByRole('button', { name: `Download ${image.name}` }).click(),
      ]);
      expect(download.suggestedFilename()).toBe(image.location.relPath.split('/').pop());
      expect(sha256(await readFile(await download.path()))).toBe(image.checksum.value);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
