import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, type FileInspector, type NodeMessage, PROTOCOL_VERSION, type ProtocolPool } from '@quantix/core';
import { HttpImageFetcher } from '@quantix/images-cloud';
import { inspectIso } from '@quantix/images-iso';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentRequester } from '../__fixtures__/agent-requests.js';
import { localPools } from '../__fixtures__/local-pools.js';
import {
  LIBVIRT_URI,
  removeDomains,
  requireServices,
  runPrefix,
  testSshRunnerOptions,
} from '../__fixtures__/services.js';
import { LibvirtHypervisor } from '../libvirt/hypervisor.js';
import { SshCommandRunner } from '../ssh/runner.js';
import { VmProvisioner } from '../vm/provisioner.js';
import { NodeAgent } from './node-agent.js';

// Everything real: the storage-local backend on real directories, the images-cloud fetcher
// against a real HTTP server on loopback, the images-iso reader on real ISOs made with xorriso,
// and libvirtd through the test sshd for the vm.* requests.

const exec = promisify(execFile);

type Sent = NodeMessage[];

/** The agent's inspector, made of the images-iso reader (what a node daemon would wire in). */
const isoInspector: FileInspector = {
  async inspect({ path, relPath, content }) {
    if (content !== 'iso') return null;
    const found = await inspectIso({ path, fileName: relPath, osinfo: null });
    return {
      format: 'iso',
      labels: found.labels,
      ...(found.identification.name ? { name: found.identification.name } : {}),
      os: {
        family: found.identification.os.family,
        distribution: found.identification.os.distribution,
        version: found.identification.os.version,
        arch: found.identification.os.arch,
      },
    };
  },
};

describe('NodeAgent with real storage, downloads and libvirt', () => {
  const prefix = runPrefix('agent');
  let root: string;
  let ssh: SshCommandRunner;
  let hypervisor: LibvirtHypervisor;
  let agent: NodeAgent;
  let server: Server;
  let baseUrl: string;
  let image: Buffer;
  let imageSha256: string;
  /** Every path the image server was asked for. */
  const served: string[] = [];
  const sent: Sent = [];
  const send = (message: NodeMessage) => void sent.push(message);

  const pool = (id: string, config: Record<string, unknown>, type = 'local'): ProtocolPool => ({
    id,
    name: id,
    type,
    config,
    contentTypes: ['iso', 'images'],
    shared: false,
  });
  const push = (generation: number, pools: ProtocolPool[]) =>
    agent.handle({ v: PROTOCOL_VERSION, type: 'pools.desired', generation, pools });
  const request = agentRequester(() => agent, sent);
  const lastState = () => [...sent].reverse().find((m) => m.type === 'pools.state');

  beforeAll(async () => {
    await requireServices('libvirt', 'sshd');
    root = await mkdtemp(join(tmpdir(), 'quantix-agent-'));
    // A small qcow2 "cloud image" served over HTTP, with Range support left to the fetcher's fallback.
    const source = join(root, 'source.qcow2');
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', source, '64M']);
    image = readFileSync(source);
    imageSha256 = createHash('sha256').update(image).digest('hex');
    server = createServer((req, res) => {
      served.push(req.url ?? '');
      if (req.url === '/tiny.qcow2') {
        res.writeHead(200, { 'content-length': image.length, 'content-type': 'application/octet-stream' });
        return res.end(image);
      }
      if (req.url === '/slow.qcow2') {
        // Trickles forever: something to cancel.
        res.writeHead(200, { 'content-length': image.length * 100 });
        const timer = setInterval(() => res.write(Buffer.alloc(1024)), 50);
        res.on('close', () => clearInterval(timer));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    ssh = new SshCommandRunner(testSshRunnerOptions());
    hypervisor = new LibvirtHypervisor({ runner: ssh, uri: LIBVIRT_URI });
    agent = new NodeAgent({
      nodeId: 'node-1',
      ...localPools(root),
      send,
      fetchers: [new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] }, requireChecksum: false })],
      inspector: isoInspector,
      hypervisor,
      vms: new VmProvisioner({ runner: ssh, hypervisor }),
      progressIntervalMs: 0,
    });
  });

  afterAll(async () => {
    // Whatever a failed test left behind: every domain of this run goes.
    await removeDomains(prefix);
    await agent?.close();
    await ssh?.close();
    await new Promise((resolve) => server?.close(resolve));
    await rm(root, { recursive: true, force: true });
  });

  it('introduces itself with what it can do', () => {
    expect(agent.hello({ hostname: 'hv-1', agentVersion: '0.1.0' })).toEqual({
      v: PROTOCOL_VERSION,
      type: 'hello',
      nodeId: 'node-1',
      hostname: 'hv-1',
      agentVersion: '0.1.0',
      capabilities: { poolTypes: ['local'], downloadSchemes: ['http', 'https'], vms: true },
      downloads: [],
      // The versions it speaks: the control plane picks the highest it shares.
      protocol: { min: 1, max: PROTOCOL_VERSION },
    });
  });

  it('activates the pushed pools and reports each with the generation', async () => {
    await push(1, [
      pool('images', { path: join(root, 'pools', 'images'), create: true }),
      pool('iso', { path: join(root, 'pools', 'iso'), create: true }),
      pool('gone', { path: join(root, 'pools', 'not-there') }),
      pool('remote', { server: '192.0.2.1', export: '/srv' }, 'nfs'),
    ]);
    const state = lastState();
    expect(state).toMatchObject({ type: 'pools.state', generation: 1 });
    const byId = Object.fromEntries((state?.type === 'pools.state' ? state.pools : []).map((p) => [p.poolId, p]));
    expect(byId.images).toMatchObject({ status: 'active', mountPath: join(root, 'pools', 'images'), reason: null });
    expect(byId.images?.capacityBytes).toBeGreaterThan(0);
    expect(existsSync(join(root, 'pools', 'iso'))).toBe(true);
    expect(byId.gone).toMatchObject({ status: 'unavailable' });
    expect(byId.gone?.reason).toBeTruthy();
    expect(byId.remote).toMatchObject({ status: 'error' });
    expect(byId.remote?.reason).toContain("'nfs'");
    expect(agent.appliedGeneration).toBe(1);
  });

  it('scans a pool: scan.result lists every file, with what the inspector read from ISOs', async () => {
    const content = join(root, 'iso-content');
    await mkdir(content);
    await writeFile(join(content, 'README'), 'hello');
    await mkdir(join(root, 'pools', 'iso', 'linux'));
    await exec('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'Debian 12.5.0 amd64 n',
      '-o',
      join(root, 'pools', 'iso', 'linux', 'debian.iso'),
      content,
    ]);
    await writeFile(join(root, 'pools', 'iso', 'notes.txt'), 'not an image');
    // Named as an ISO, but not one: left out, and the answer says so (what `images rescan` prints).
    await writeFile(join(root, 'pools', 'iso', 'fake.iso'), 'not an image either');
    const { response, emitted } = await request({ op: 'pool.scan', poolId: 'iso', content: 'iso' });
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({
      poolId: 'iso',
      content: 'iso',
      files: 1,
      invalid: [
        { relPath: 'fake.iso', code: expect.stringMatching(/^ISO_/), message: expect.stringContaining('fake.iso') },
      ],
    });
    const result = emitted.find((m) => m.type === 'scan.result');
    expect(result).toMatchObject({ poolId: 'iso', content: 'iso' });
    const files = result?.type === 'scan.result' ? result.files : [];
    expect(files).toEqual([
      expect.objectContaining({
        relPath: 'linux/debian.iso',
        kind: 'iso',
        format: 'iso',
        sizeBytes: statSync(join(root, 'pools', 'iso', 'linux', 'debian.iso')).size,
      }),
    ]);
    expect(files[0]?.labels).toMatchObject({ 'iso.quantix.io/volume-id': 'Debian 12.5.0 amd64 n' });
    expect(files[0]?.os?.distribution).toBe('debian');
  });

  it('sends changes only against the fingerprint of its last report; any other `since` gets the whole scan', async () => {
    const scanOf = (emitted: NodeMessage[]) =>
      emitted.find((m) => m.type === 'scan.result' || m.type === 'scan.delta') as
        | Extract<NodeMessage, { type: 'scan.result' | 'scan.delta' }>
        | undefined;
    const whole = scanOf((await request({ op: 'pool.scan', poolId: 'iso', content: 'iso' })).emitted);
    expect(whole?.type).toBe('scan.result');
    const fingerprint = whole?.fingerprint as string;
    expect(fingerprint).toMatch(/^1-[0-9a-f]+$/);

    const stranger = await request({ op: 'pool.scan', poolId: 'iso', content: 'iso', since: '1-abc' });
    expect(stranger.response.result).not.toHaveProperty('delta');
    expect(scanOf(stranger.emitted)).toMatchObject({ type: 'scan.result', fingerprint });

    const extra = join(root, 'pools', 'iso', 'linux', 'copy.iso');
    copyFileSync(join(root, 'pools', 'iso', 'linux', 'debian.iso'), extra);
    const changed = await request({ op: 'pool.scan', poolId: 'iso', content: 'iso', since: fingerprint });
    expect(changed.response.result).toMatchObject({ files: 2, delta: true });
    const delta = scanOf(changed.emitted);
    expect(delta).toMatchObject({ type: 'scan.delta', base: fingerprint, removed: [] });
    expect(delta?.files.map((f) => [f.relPath, f.os?.distribution])).toEqual([['linux/copy.iso', 'debian']]);

    rmSync(extra);
    const back = await request({ op: 'pool.scan', poolId: 'iso', content: 'iso', since: delta?.fingerprint });
    expect(scanOf(back.emitted)).toMatchObject({
      type: 'scan.delta',
      files: [],
      removed: ['linux/copy.iso'],
      fingerprint,
    });
  });

  it('downloads an image into a pool with progress, and describes it', async () => {
    const { response, emitted } = await request({
      op: 'image.download',
      imageId: 'img-1',
      poolId: 'images',
      relPath: 'cloud/tiny.qcow2',
      sourceUrl: `${baseUrl}/tiny.qcow2`,
      checksum: { algorithm: 'sha256', value: imageSha256 },
      checksumUrl: null,
    });
    expect(response.error).toBeUndefined();
    expect(response.result).toMatchObject({
      sizeBytes: image.length,
      checksum: { algorithm: 'sha256', value: imageSha256 },
      format: 'qcow2',
      virtualSizeBytes: 64 * 1024 * 1024,
      resumed: false,
    });
    const progress = emitted.filter((m) => m.type === 'image.progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ imageId: 'img-1', bytesDone: image.length, phase: 'verifying' });
    expect(readFileSync(join(root, 'pools', 'images', 'cloud', 'tiny.qcow2')).equals(image)).toBe(true);

    const stat = await request({ op: 'file.stat', poolId: 'images', relPath: 'cloud/tiny.qcow2' });
    expect(stat.response.result).toEqual({ exists: true, sizeBytes: image.length, availableBytes: expect.any(Number) });
    // What the pool's file system has free, as statfs says (other writers on this disk move it a little).
    const free = (path: string) => {
      const fs = statfsSync(path);
      return fs.bavail * fs.bsize;
    };
    const poolDir = join(root, 'pools', 'images', 'cloud');
    const { availableBytes } = stat.response.result as { availableBytes: number };
    expect(Math.abs(availableBytes - free(poolDir))).toBeLessThan(256 * 1024 * 1024);
    const missing = await request({ op: 'file.stat', poolId: 'images', relPath: 'cloud/nope.qcow2' });
    expect(missing.response.result).toMatchObject({
      exists: false,
      sizeBytes: null,
      availableBytes: expect.any(Number),
    });
    // A directory not made yet: the file system it would be made on, the pool's (a copy into it makes it).
    const nowhere = await request({ op: 'file.stat', poolId: 'images', relPath: 'nowhere/nope.qcow2' });
    expect(nowhere.response.result).toMatchObject({ exists: false, sizeBytes: null });
    const nowhereFree = (nowhere.response.result as { availableBytes: number }).availableBytes;
    expect(Math.abs(nowhereFree - free(join(root, 'pools', 'images')))).toBeLessThan(256 * 1024 * 1024);
  });

  it('reads a pool file whole for its checksum (file.hash), inside the pool only', async () => {
    await mkdir(join(root, 'pools', 'images', 'by-hand'), { recursive: true });
    const path = join(root, 'pools', 'images', 'by-hand', 'disk.raw');
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 7, 'q');
    await writeFile(path, bytes);
    const hashed = await request({
      op: 'file.hash',
      poolId: 'images',
      relPath: 'by-hand/disk.raw',
      algorithm: 'sha256',
    });
    expect(hashed.response.error).toBeUndefined();
    expect(hashed.response.result).toEqual({
      sizeBytes: bytes.length,
      checksum: { algorithm: 'sha256', value: createHash('sha256').update(bytes).digest('hex') },
      modifiedAt: statSync(path).mtime.toISOString(),
    });
    const sha512 = await request({
      op: 'file.hash',
      poolId: 'images',
      relPath: 'by-hand/disk.raw',
      algorithm: 'sha512',
    });
    expect(sha512.response.result).toMatchObject({
      checksum: { algorithm: 'sha512', value: createHash('sha512').update(bytes).digest('hex') },
    });
    const missing = await request({
      op: 'file.hash',
      poolId: 'images',
      relPath: 'by-hand/nope.raw',
      algorithm: 'sha256',
    });
    expect(missing.response.error?.code).toBe(ErrorCode.IMAGE_FILE_MISSING);
    const folder = await request({ op: 'file.hash', poolId: 'images', relPath: 'by-hand', algorithm: 'sha256' });
    expect(folder.response.error?.code).toBe(ErrorCode.IMAGE_FILE_MISSING);
    const escaping = await request({
      op: 'file.hash',
      poolId: 'images',
      relPath: '../../etc/passwd',
      algorithm: 'sha256',
    });
    expect(escaping.response.error?.code).toBe(ErrorCode.PATH_ESCAPES_POOL);
  });

  it('cancels a download in flight', async () => {
    const download = request({
      op: 'image.download',
      imageId: 'img-slow',
      poolId: 'images',
      relPath: 'cloud/slow.qcow2',
      sourceUrl: `${baseUrl}/slow.qcow2`,
      checksum: null,
      checksumUrl: null,
    });
    await new Promise((r) => setTimeout(r, 300));
    const cancel = await request({ op: 'image.cancel', imageId: 'img-slow' });
    expect(cancel.response.result).toEqual({ cancelled: true });
    const { response } = await download;
    expect(response.error?.code).toBe(ErrorCode.DOWNLOAD_CANCELLED);
    expect(existsSync(join(root, 'pools', 'images', 'cloud', 'slow.qcow2'))).toBe(false);
  });

  it('runs a download asked for again right after its cancel on its own, not joined to the cancelled run', async () => {
    const place = { op: 'image.download', imageId: 'img-again', poolId: 'images', relPath: 'cloud/again.qcow2' };
    const first = request({ ...place, sourceUrl: `${baseUrl}/slow.qcow2`, checksum: null, checksumUrl: null });
    await new Promise((r) => setTimeout(r, 300));
    // The cancel and the new request in one turn, as one read of the node's socket can bring them.
    const [cancel, again] = await Promise.all([
      request({ op: 'image.cancel', imageId: 'img-again' }),
      request({
        ...place,
        sourceUrl: `${baseUrl}/tiny.qcow2`,
        checksum: { algorithm: 'sha256', value: imageSha256 },
        checksumUrl: null,
      }),
    ]);
    expect(cancel.response.result).toEqual({ cancelled: true });
    expect((await first).response.error?.code).toBe(ErrorCode.DOWNLOAD_CANCELLED);
    expect(again.response.error).toBeUndefined();
    expect(again.response.result).toMatchObject({ sizeBytes: image.length, checksum: { value: imageSha256 } });
    expect(readFileSync(join(root, 'pools', 'images', 'cloud', 'again.qcow2')).equals(image)).toBe(true);
  });

  it('answers bad requests with an error code, never by acting on them', async () => {
    const escaping = await request({ op: 'file.stat', poolId: 'images', relPath: '../../etc/passwd' });
    expect(escaping.response.error?.code).toBe(ErrorCode.PATH_ESCAPES_POOL);
    const unassigned = await request({ op: 'pool.scan', poolId: 'elsewhere', content: 'iso' });
    expect(unassigned.response.error?.code).toBe(ErrorCode.NOT_FOUND);
    const ftp = await request({
      op: 'image.download',
      imageId: 'img-ftp',
      poolId: 'images',
      relPath: 'x.qcow2',
      sourceUrl: 'ftp://127.0.0.1/x.qcow2',
      checksum: null,
      checksumUrl: null,
    });
    expect(ftp.response.error?.code).toBe(ErrorCode.UNSUPPORTED_OPERATION);
    const marker = join(root, 'ran');
    const hostile = await request({ op: 'vm.start', name: `x; touch ${marker}` });
    expect(hostile.response.error?.code).toBe(ErrorCode.INVALID_INPUT);
    expect(existsSync(marker)).toBe(false);
    const malformed = await request({ op: 'vm.explode' });
    expect(malformed.response.error?.code).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
  });

  it('judges a source by its policy without fetching it (source.check)', async () => {
    served.length = 0;
    const check = (sourceUrl: string, checksumUrl: string | null = null) =>
      request({ op: 'source.check', sourceUrl, checksumUrl }).then(({ response }) => response);
    expect((await check(`${baseUrl}/tiny.qcow2`, `${baseUrl}/SHA256SUMS`)).result).toEqual({ allowed: true });
    const port = new URL(baseUrl).port;
    expect((await check(`http://127.0.0.2:${port}/tiny.qcow2`)).error).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      message: expect.stringContaining('127.0.0.2 is in a denied range'),
    });
    expect((await check(`${baseUrl}/tiny.qcow2`, 'http://169.254.169.254/SHA256SUMS')).error).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
    });
    expect((await check('ftp://127.0.0.1/x.qcow2')).error).toMatchObject({
      code: ErrorCode.UNSUPPORTED_OPERATION,
      message: 'This node has no fetcher for ftp URLs',
    });
    expect(served).toEqual([]);
  });

  it('creates a VM from the downloaded image → running; stops and deletes it; the image stays', async () => {
    const name = `${prefix}-cloud`;
    const before = createHash('sha256')
      .update(readFileSync(join(root, 'pools', 'images', 'cloud', 'tiny.qcow2')))
      .digest('hex');
    const created = await request({
      op: 'vm.create',
      vm: {
        name,
        cpu: 1,
        memoryMiB: 64,
        firmware: 'bios',
        boot: {
          kind: 'cloud',
          image: { poolId: 'images', relPath: 'cloud/tiny.qcow2' },
          disk: { poolId: 'images', relPath: `vms/${name}/disk0.qcow2`, sizeGiB: 1 },
          seed: { poolId: 'images', relPath: `vms/${name}/seed.iso` },
          cloudInit: { hostname: 'web-01', user: 'ada', sshAuthorizedKeys: [] },
        },
      },
    });
    expect(created.response.error).toBeUndefined();
    expect(created.response.result).toMatchObject({ name, state: 'running' });
    expect((await request({ op: 'vm.state', name })).response.result).toEqual({ name, state: 'running' });
    expect((await request({ op: 'vm.stop', name, force: true })).response.result).toEqual({ name, state: 'shutoff' });
    const deleted = await request({ op: 'vm.delete', name });
    expect(deleted.response.error).toBeUndefined();
    expect((await request({ op: 'vm.state', name })).response.error?.code).toBe(ErrorCode.NOT_FOUND);
    expect(existsSync(join(root, 'pools', 'images', 'vms', name))).toBe(false);
    const after = createHash('sha256')
      .update(readFileSync(join(root, 'pools', 'images', 'cloud', 'tiny.qcow2')))
      .digest('hex');
    expect(after).toBe(before);
  });

  it('creates a VM from an ISO in another pool → running', async () => {
    const name = `${prefix}-iso`;
    const created = await request({
      op: 'vm.create',
      vm: {
        name,
        cpu: 1,
        memoryMiB: 64,
        firmware: 'bios',
        boot: {
          kind: 'iso',
          iso: { poolId: 'iso', relPath: 'linux/debian.iso' },
          disk: { poolId: 'images', relPath: `vms/${name}/disk0.qcow2`, sizeGiB: 1 },
        },
      },
    });
    expect(created.response.result).toMatchObject({ name, state: 'running' });
    expect((await request({ op: 'vm.delete', name })).response.error).toBeUndefined();
    expect(existsSync(join(root, 'pools', 'iso', 'linux', 'debian.iso'))).toBe(true);
  });

  it('removes an image file on request', async () => {
    const { response } = await request({ op: 'image.remove', poolId: 'images', relPath: 'cloud/tiny.qcow2' });
    expect(response.result).toEqual({ removed: true });
    expect(existsSync(join(root, 'pools', 'images', 'cloud', 'tiny.qcow2'))).toBe(false);
    // Asked again (a file that is not there): nothing to remove, and no error.
    const again = await request({ op: 'image.remove', poolId: 'images', relPath: 'cloud/tiny.qcow2' });
    expect(again.response).toMatchObject({ result: { removed: false } });
    expect(again.response.error).toBeUndefined();
  });

  it('deactivates pools no longer pushed, applies pushes in order, and ignores an older one', async () => {
    await push(2, [pool('images', { path: join(root, 'pools', 'images'), create: true })]);
    expect(lastState()).toMatchObject({
      generation: 2,
      pools: [expect.objectContaining({ poolId: 'images', status: 'active' })],
    });
    expect((await request({ op: 'pool.scan', poolId: 'iso', content: 'iso' })).response.error?.code).toBe(
      ErrorCode.NOT_FOUND,
    );
    // The pool's files are never touched by deactivation.
    expect(existsSync(join(root, 'pools', 'iso', 'linux', 'debian.iso'))).toBe(true);

    const from = sent.length;
    await Promise.all([3, 4, 5].map((g) => push(g, [pool('images', { path: join(root, 'pools', 'images') })])));
    const generations = sent.slice(from).flatMap((m) => (m.type === 'pools.state' ? [m.generation] : []));
    expect(generations.at(-1)).toBe(5);
    expect([...generations].sort((a, b) => a - b)).toEqual(generations);

    const before = sent.length;
    await push(4, []);
    expect(sent.length).toBe(before);
    expect(agent.appliedGeneration).toBe(5);
  });
});
