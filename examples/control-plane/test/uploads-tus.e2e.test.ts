/**
 * Resumable uploads (tus) end to end: the built `quantix` CLI (tus-js-client) uploads a real ISO
 * to the all-in-one control plane, whose node agent stores it in its local pool. Between CLI and
 * server a TCP proxy paces the bytes (a slow link) and counts them, so the CLI can be SIGKILLed
 * mid-stream and the second run's bytes measured. The protocol's refusals are asked over plain
 * HTTP. Needs `npx turbo run build` first.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeQcow2, VIRTUAL_SIZE } from '@quantix/images-cloud/testing';
import { buildIso, REAL_MEDIA, requireIsoTools } from '@quantix/images-iso/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_POOL_ID } from '../src/cli/up.js';
import { TcpProxy } from './faults/tcp-proxy.js';
import { startStorageSystem, type TestSystem, waitFor } from './harness.js';
import { exitOf, QUANTIX, startProcess, stopProcess } from './processes.js';

const run = promisify(execFile);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const b64 = (value: string) => Buffer.from(value).toString('base64');

describe('resumable uploads (tus)', () => {
  let work: string;
  let system: Awaited<ReturnType<typeof startStorageSystem>>['system'];
  let api: TestSystem['api'];
  let proxy: TcpProxy;
  let proxyUrl: string;
  let iso: Buffer;
  let isoPath: string;

  const tus = (method: string, path: string, headers: Record<string, string> = {}, body?: Buffer) =>
    fetch(`${system.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${system.apiToken}`, 'tus-resumable': '1.0.0', ...headers },
      ...(body ? { body: new Uint8Array(body) } : {}),
    });

  /** A tus creation for `name` in the local pool; returns the response. */
  const create = (name: string, length: number, extra: Record<string, string> = {}, token = true) =>
    fetch(`${system.url}/api/v1/uploads/tus`, {
      method: 'POST',
      headers: {
        ...(token ? { authorization: `Bearer ${system.apiToken}` } : {}),
        'tus-resumable': '1.0.0',
        'upload-length': String(length),
        'upload-metadata': Object.entries({ poolId: LOCAL_POOL_ID, name, ...extra })
          .map(([key, value]) => `${key} ${b64(value)}`)
          .join(','),
      },
    });

  /** Creates an upload of `bytes` as `name` and sends them in one PATCH: that PATCH's answer and the upload's URL. */
  const uploadWhole = async (name: string, bytes: Buffer, extra: Record<string, string> = {}) => {
    const created = await create(name, bytes.length, extra);
    expect(created.status).toBe(201);
    const location = created.headers.get('location') ?? '';
    const patched = await tus(
      'PATCH',
      location,
      { 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      bytes,
    );
    return { location, patched };
  };

  const stagedTusFiles = async () =>
    (await readdir(join(work, 'data', 'uploads', 'tus')).catch(() => [] as string[])).filter(
      (f) => !f.endsWith('.json'),
    );

  beforeAll(async () => {
    requireIsoTools();
    work = await mkdtemp(join(tmpdir(), 'quantix-tus-'));
    // 12 MiB: long enough at the proxy's pace to be cut off midway.
    isoPath = await buildIso(join(work, 'ubuntu.iso'), { ...REAL_MEDIA.ubuntuServer2404, padBytes: 12 * 1024 * 1024 });
    iso = await readFile(isoPath);
    ({ system, api } = await startStorageSystem(join(work, 'data')));
    const target = new URL(system.url);
    proxy = new TcpProxy(() => ({ host: target.hostname, port: Number(target.port) }));
    proxyUrl = `http://127.0.0.1:${await proxy.listen()}`;
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await system?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('continues an upload whose CLI was SIGKILLed mid-stream from the server’s offset, and ends ready with its SHA-256', async () => {
    const env = { QUANTIX_URL: proxyUrl, QUANTIX_TOKEN: system.apiToken, XDG_CACHE_HOME: join(work, 'cache') };
    const stateDir = join(work, 'cache', 'quantix', 'uploads');
    proxy.clientBytesPerSecond = 2 * 1024 * 1024;
    const first = startProcess(
      [QUANTIX, 'images', 'upload', isoPath, '--pool', LOCAL_POOL_ID, '--name', 'resumed.iso'],
      env,
    );
    let uploadUrl = '';
    const offsetOf = async () => {
      const answer = await tus('HEAD', new URL(uploadUrl).pathname);
      return answer.status === 200 ? Number(answer.headers.get('upload-offset')) : -answer.status;
    };
    try {
      // The CLI keeps the upload's URL as soon as the server made it.
      await waitFor(async () => {
        // The CLI writes its state aside and renames it: a .json file is whole.
        const [file] = (await readdir(stateDir).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
        if (!file) return false;
        uploadUrl = (JSON.parse(await readFile(join(stateDir, file), 'utf8')) as { uploadUrl: string }).uploadUrl;
        return Boolean(uploadUrl);
      }, 'the CLI to save the upload URL');
      await waitFor(async () => (await offsetOf()) >= 1024 * 1024, 'a MiB to arrive');
    } catch (error) {
      throw new Error(`${(error as Error).message}; the CLI printed:\n${first.output.join('')}`);
    } finally {
      await stopProcess(first, 'SIGKILL');
    }
    // The server keeps what arrived before the kill; HEAD reports it once the cut request ended.
    let offset = await offsetOf();
    await waitFor(async () => {
      const now = await offsetOf();
      const settled = now === offset;
      offset = now;
      return settled && proxy.live === 0;
    }, 'the offset to settle after the kill');
    expect(offset).toBeGreaterThanOrEqual(1024 * 1024);
    expect(offset).toBeLessThan(iso.length);
    expect(await api('GET', '/images?text=resumed.iso')).toMatchObject({ status: 200, body: { total: 0 } });

    proxy.clientBytesPerSecond = 0;
    proxy.clientBytes = 0;
    const second = startProcess(
      [QUANTIX, 'images', 'upload', isoPath, '--pool', LOCAL_POOL_ID, '--name', 'resumed.iso'],
      env,
    );
    const code = await exitOf(second, 120_000);
    expect(code, second.output.join('')).toBe(0);
    expect(second.output.join('')).toContain(`resumed at byte ${offset} of ${iso.length}`);
    // Not a terminal: plain progress lines, each once (the last chunk and the end were both 100%), a
    // line a tenth at most, the last at 100%.
    const progress = second.output
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('uploading resumed.iso'));
    expect(new Set(progress).size).toBe(progress.length);
    expect(progress.length).toBeLessThanOrEqual(11);
    expect(progress.at(-1)).toMatch(/ 100% /);
    // Only the rest crossed the link the second time (plus a few KiB of HTTP).
    expect(proxy.clientBytes).toBeLessThan(iso.length - offset + 64 * 1024);
    expect(proxy.clientBytes).toBeGreaterThanOrEqual(iso.length - offset);

    const listed = await api('GET', '/images?text=resumed.iso');
    expect(listed.body.images).toHaveLength(1);
    expect(listed.body.images[0]).toMatchObject({
      phase: 'ready',
      kind: 'iso',
      checksum: { algorithm: 'sha256', value: sha256(iso) },
      labels: { 'quantix.io/source': 'upload' },
    });
    const stored = await readFile(join(work, 'data', 'pools', 'local', 'iso', 'resumed.iso'));
    expect(sha256(stored)).toBe(sha256(iso));
    // As a person reads it: the size in MiB, the pool and the path under plain headings.
    const table = startProcess([QUANTIX, 'images', 'list', '--text', 'resumed.iso'], env);
    expect(await exitOf(table, 60_000), table.output.join('')).toBe(0);
    const mib = (iso.length / 1024 / 1024).toFixed(1).replace('.', '\\.');
    expect(table.output.join('')).toMatch(
      new RegExp(
        `^ID +NAME +KIND +PHASE +SIZE +POOL +PATH\\n\\S+ +resumed\\.iso +iso +ready +${mib} MiB +${LOCAL_POOL_ID} +iso/resumed\\.iso\\n`,
      ),
    );
    // The state file is gone and so, once the node has the file, is the staged copy.
    expect(await readdir(stateDir)).toEqual([]);
    await waitFor(async () => (await stagedTusFiles()).length === 0, 'the staged copy to be removed');

    // Deleting it asks first; a script that cannot answer must say --yes, and nothing goes meanwhile.
    const imageId = listed.body.images[0].id as string;
    const unasked = startProcess([QUANTIX, 'images', 'delete', imageId], env);
    expect(await exitOf(unasked, 60_000)).toBe(2);
    expect(unasked.output.join('')).toContain(
      'not deleting image resumed.iso without confirmation: stdin is not a terminal; give --yes',
    );
    expect(existsSync(join(work, 'data', 'pools', 'local', 'iso', 'resumed.iso'))).toBe(true);
    const deleted = startProcess([QUANTIX, 'images', 'delete', imageId, '--yes'], env);
    expect(await exitOf(deleted, 60_000), deleted.output.join('')).toBe(0);
    expect(deleted.output.join('')).toContain(`deleted image resumed.iso (${imageId}) and its file`);
    expect(existsSync(join(work, 'data', 'pools', 'local', 'iso', 'resumed.iso'))).toBe(false);
    expect((await api('GET', `/images/${imageId}`)).status).toBe(404);
  }, 180_000);

  it('refuses a finished upload whose bytes do not have the SHA-256 given (CHECKSUM_MISMATCH), keeping nothing', async () => {
    const { location, patched } = await uploadWhole('wrong-sum.iso', iso, { sha256: 'ab'.repeat(32) });
    expect(patched.status).toBe(422);
    expect(JSON.parse(await patched.text())).toMatchObject({
      error: { code: 'CHECKSUM_MISMATCH', details: { expected: 'ab'.repeat(32), actual: sha256(iso) } },
    });
    // Gone: a resume finds nothing (never "complete"), no image row, no staged bytes.
    expect((await tus('HEAD', location)).status).toBe(404);
    expect((await api('GET', '/images?text=wrong-sum')).body.total).toBe(0);
    expect(await stagedTusFiles()).toEqual([]);
  });

  it('refuses a file that is not what it claims (a text file named .iso), keeping nothing', async () => {
    const { location, patched } = await uploadWhole('not-an-iso.iso', Buffer.from('this is not an ISO9660 image\n'));
    expect(patched.status).toBe(422);
    const refusal = await patched.text();
    expect(JSON.parse(refusal).error).toMatchObject({
      code: expect.stringMatching(/^ISO_/),
      details: { path: 'not-an-iso.iso' },
    });
    expect(refusal, 'the refusal names the staging path').not.toContain(join(work, 'data'));
    expect((await tus('HEAD', location)).status).toBe(404);
    expect((await api('GET', '/images?text=not-an-iso')).body.total).toBe(0);
  });

  it('the CLI, refused (a text file named .iso), says why and forgets the upload: the next run starts afresh', async () => {
    const cache = await mkdtemp(join(work, 'cache-refused-'));
    const stateDir = join(cache, 'quantix', 'uploads');
    const file = join(work, 'notes.iso');
    await writeFile(file, 'these are notes, not an ISO9660 image\n');
    const env = { QUANTIX_URL: system.url, QUANTIX_TOKEN: system.apiToken, XDG_CACHE_HOME: cache };
    for (const run of [1, 2]) {
      const cli = startProcess(
        [QUANTIX, 'images', 'upload', file, '--pool', LOCAL_POOL_ID, '--name', 'notes.iso'],
        env,
      );
      const code = await exitOf(cli, 60_000);
      const printed = cli.output.join('');
      expect(code, printed).toBe(1);
      // It names the file uploaded, never where the control plane staged it.
      expect(printed).toMatch(/error ISO_[A-Z0-9_]+: notes\.iso: is not an ISO 9660 image/);
      expect(printed).not.toContain(join(work, 'data'));
      // The refused upload is gone on the server; a state naming it would make every later run fail alike.
      expect(await readdir(stateDir), `run ${run}`).toEqual([]);
    }
    expect((await api('GET', '/images?text=notes.iso')).body.total).toBe(0);
  });

  it('takes a qcow2 disk image (kind disk), read by qemu-img, and the node stores it ready', async () => {
    const qcow2 = await makeQcow2(work, 'disk.qcow2', 2);
    const { patched } = await uploadWhole('disk.qcow2', qcow2, { kind: 'disk', sha256: sha256(qcow2) });
    expect(patched.status).toBe(204);
    const imageId = patched.headers.get('quantix-image-id');
    await waitFor(async () => (await api('GET', `/images/${imageId}`)).body.phase === 'ready', 'the disk image ready');
    expect((await api('GET', `/images/${imageId}`)).body).toMatchObject({
      kind: 'cloud',
      format: 'qcow2',
      checksum: { algorithm: 'sha256', value: sha256(qcow2) },
      // The disk it holds, as a download's row says it: what the Images page shows, and a VM's disk starts from.
      virtualSizeBytes: VIRTUAL_SIZE,
    });
  });

  it('refuses disk images that are not what they claim or depend on another file (IMAGE_INVALID), keeping nothing', async () => {
    const text = await uploadWhole('text.qcow2', Buffer.from('not a disk image\n'), { kind: 'disk' });
    expect(text.patched.status).toBe(422);
    const refusal = await text.patched.text();
    expect(JSON.parse(refusal).error.code).toBe('IMAGE_INVALID');
    expect(refusal, 'the refusal names the staging path').not.toContain(join(work, 'data'));
    await makeQcow2(work, 'base.qcow2', 1);
    const base = join(work, 'base.qcow2');
    const child = join(work, 'child.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', child]);
    const backed = await uploadWhole('child.qcow2', await readFile(child), { kind: 'disk' });
    expect(backed.patched.status).toBe(422);
    expect(JSON.parse(await backed.patched.text())).toMatchObject({
      error: { code: 'IMAGE_UNSAFE', message: expect.stringContaining('backing file') },
    });
    expect((await api('GET', '/images?text=.qcow2')).body.images.map((i: { name: string }) => i.name)).toEqual([
      'disk.qcow2',
    ]);
    expect(await stagedTusFiles()).toEqual([]);
  });

  it('refuses an Upload-Length above the limit with 413 UPLOAD_TOO_LARGE before any byte', async () => {
    const answer = await create('huge.iso', 17 * 1024 ** 3);
    expect(answer.status).toBe(413);
    expect(await answer.json()).toMatchObject({ error: { code: 'UPLOAD_TOO_LARGE' } });
    expect(answer.headers.get('location')).toBeNull();
  });

  it('refuses bad metadata (an escaping name, no pool) with 400 INVALID_INPUT in the project’s shape', async () => {
    const escaping = await create('../escape.iso', 10);
    expect(escaping.status).toBe(400);
    expect((await escaping.json()).error.code).toBe('INVALID_INPUT');
    const noPool = await fetch(`${system.url}/api/v1/uploads/tus`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${system.apiToken}`,
        'tus-resumable': '1.0.0',
        'upload-length': '10',
        'upload-metadata': `name ${b64('x.iso')}`,
      },
    });
    expect(noPool.status).toBe(400);
    expect((await noPool.json()).error.details.issues[0].path).toBe('Upload-Metadata.poolId');
  });

  it('answers 401 without the API token, on creation and on an existing upload', async () => {
    const created = await create('token.iso', iso.length);
    const location = created.headers.get('location') ?? '';
    expect(created.status).toBe(201);
    const anonymous = await create('token2.iso', iso.length, {}, false);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.code).toBe('UNAUTHORIZED');
    for (const method of ['HEAD', 'PATCH', 'DELETE']) {
      const answer = await fetch(`${system.url}${location}`, {
        method,
        headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
        ...(method === 'PATCH' ? { body: new Uint8Array(iso.subarray(0, 1024)) } : {}),
      });
      expect(answer.status, method).toBe(401);
    }
    expect(Number((await tus('HEAD', location)).headers.get('upload-offset'))).toBe(0);
    // Termination removes it.
    expect((await tus('DELETE', location)).status).toBe(204);
    expect((await tus('HEAD', location)).status).toBe(404);
  });
});
