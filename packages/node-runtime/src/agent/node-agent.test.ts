import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import {
  createPoolRootPolicy,
  desiredPoolsFingerprint,
  LocalCommandRunner,
  type NodeMessage,
  type NodeRequest,
  PROTOCOL_VERSION,
  type ProtocolPool,
} from '@quantix/core';
import { mountSmallFilesystem } from '@quantix/core/testing';
import { createIsoInspector } from '@quantix/images-iso';
import { LocalStorageBackend, localPoolType } from '@quantix/storage-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastPoolStates, scanAnswer as scanAnswerOf } from '../__fixtures__/agent-requests.js';
import { localPools } from '../__fixtures__/local-pools.js';
import { LibvirtHypervisor } from '../libvirt/hypervisor.js';
import { NodeAgent } from './node-agent.js';

// Real directories, links and ISOs (xorriso); the agent's checks before any backend acts.

const exec = promisify(execFile);

const pool = (id: string, config: Record<string, unknown>, type = 'local'): ProtocolPool => ({
  id,
  name: id,
  type,
  config,
  contentTypes: ['iso', 'images'],
  shared: false,
});

/** A logger that keeps what was logged at warn. */
function recordingLogger() {
  const warnings: { object: Record<string, unknown>; message: string }[] = [];
  const noop = () => undefined;
  const logger = {
    warn: (object: Record<string, unknown>, message: string) => void warnings.push({ object, message }),
    info: noop,
    debug: noop,
    error: noop,
    trace: noop,
    fatal: noop,
    child: () => logger,
  };
  return { warnings, logger: logger as unknown as ConstructorParameters<typeof NodeAgent>[0]['logger'] };
}

let base: string;
let allowed: string;

/** An agent of node n1 with local pools allowed under `allowed`, whose messages go to `sent`. */
const localAgent = (sent: NodeMessage[], extra: Partial<ConstructorParameters<typeof NodeAgent>[0]> = {}) =>
  new NodeAgent({
    nodeId: 'n1',
    ...localPools(allowed),
    send: (message) => void sent.push(message),
    ...extra,
  });

async function makeIso(path: string, volumeId: string): Promise<void> {
  const content = await mkdtemp(join(tmpdir(), 'quantix-agent-iso-'));
  await writeFile(join(content, 'user-data'), '#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAA secret]\n');
  await exec('xorriso', ['-as', 'mkisofs', '-quiet', '-V', volumeId, '-J', '-R', '-o', path, content]);
  await rm(content, { recursive: true, force: true });
}

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-agent-roots-')));
  allowed = join(base, 'allowed');
  await mkdir(allowed, { recursive: true });
  await symlink('/etc', join(allowed, 'etc-link'));
  await symlink(base, join(allowed, 'up-link'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('NodeAgent pool checks', () => {
  const sent: NodeMessage[] = [];
  const agent = () => localAgent(sent);
  const scanAnswer = (node: NodeAgent, poolId: string) => scanAnswerOf(node, sent, poolId);
  const states = () => lastPoolStates(sent);

  it('refuses pools at system directories, relative or dotted paths, outside the allowed roots or through a link out of them', async () => {
    const node = agent();
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [
        pool('root', { path: '/' }),
        pool('etc', { path: '/etc' }),
        pool('relative', { path: 'pools/x', create: true }),
        pool('dotted', { path: `${allowed}/../..`, create: true }),
        pool('outside', { path: join(base, 'outside'), create: true }),
        pool('link-etc', { path: join(allowed, 'etc-link') }),
        pool('link-out', { path: join(allowed, 'up-link', 'made-through-link'), create: true }),
        pool('typo', { path: join(allowed, 'typo'), craete: true }),
        pool('zfs', { dataset: 'tank/isos' }, 'zfs'),
        pool('good', { path: join(allowed, 'good'), create: true }),
      ],
    });
    const byId = states();
    for (const id of ['root', 'etc', 'relative', 'dotted', 'outside', 'link-etc', 'link-out']) {
      expect(byId[id], id).toMatchObject({ status: 'error', mountPath: null });
      expect(byId[id]?.reason, id).toMatch(/^Pool root .* (is|contains|lies inside|is outside|is not)/);
    }
    expect(byId['link-etc']?.reason).toContain('resolves to /etc');
    expect(byId.typo).toMatchObject({ status: 'error', reason: expect.stringContaining('config.craete') });
    expect(byId.zfs).toMatchObject({ status: 'error', reason: expect.stringContaining("unknown pool type 'zfs'") });
    expect(byId.good).toMatchObject({ status: 'active', mountPath: join(allowed, 'good') });
    // Nothing was created where it was refused.
    expect(existsSync(join(base, 'outside'))).toBe(false);
    expect(existsSync(join(base, 'made-through-link'))).toBe(false);
    expect(existsSync(join(allowed, 'typo'))).toBe(false);
    // A refused pool takes no requests: a scan of / lists nothing.
    expect(await scanAnswer(node, 'root')).toMatchObject({ type: 'response', error: { code: 'NOT_FOUND' } });
    await node.close();
  });

  it('allows by default only /var/lib/quantix and /srv: a pool in a temporary directory is refused', async () => {
    const node = new NodeAgent({
      nodeId: 'n1',
      backends: [new LocalStorageBackend()],
      poolTypes: [localPoolType],
      send: (message) => void sent.push(message),
    });
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [pool('tmp', { path: join(allowed, 'default-policy'), create: true })],
    });
    expect(states().tmp).toMatchObject({
      status: 'error',
      reason: expect.stringContaining(
        'outside the allowed pool roots; pool roots must lie inside one of /var/lib/quantix, /srv',
      ),
    });
    expect(existsSync(join(allowed, 'default-policy'))).toBe(false);
    await node.close();
  });

  it('refuses a pool whose directory, links resolved, is, holds or lies in an earlier pool’s of the push (POOL_ROOT_OVERLAPS)', async () => {
    const node = agent();
    const media = join(allowed, 'media');
    await mkdir(media, { recursive: true });
    await symlink(media, join(allowed, 'media-link'));
    const push = (generation: number, pools: ProtocolPool[]) =>
      node.handle({ v: PROTOCOL_VERSION, type: 'pools.desired', generation, pools });
    // Spelled apart, so the control plane let them by; on this node the link is the same directory.
    await push(1, [
      pool('media', { path: media }),
      pool('link', { path: join(allowed, 'media-link') }),
      pool('inner', { path: join(allowed, 'media-link', 'inner'), create: true }),
      pool('beside', { path: join(allowed, 'media-2'), create: true }),
    ]);
    let byId = states();
    expect(byId.media).toMatchObject({ status: 'active', mountPath: media });
    expect(byId.beside).toMatchObject({ status: 'active' });
    expect(byId.link).toMatchObject({ status: 'error', mountPath: null });
    expect(byId.link?.reason).toBe(
      `Pool link's root ${media} is also pool media's root ${media} on node n1: a file there would be both pools', listed by both and deleted through either; give one pool a directory apart from the other's`,
    );
    expect(byId.inner?.reason).toMatch(new RegExp(`^Pool inner's root ${media}/inner lies inside pool media's root`));
    expect(existsSync(join(media, 'inner'))).toBe(false);
    // A refused pool takes no requests.
    expect(await scanAnswer(node, 'link')).toMatchObject({ type: 'response', error: { code: 'NOT_FOUND' } });
    // The first pool gone, the link is the one pool there.
    await push(2, [pool('link', { path: join(allowed, 'media-link') })]);
    byId = states();
    expect(byId.link).toMatchObject({ status: 'active', reason: null });
    await node.close();
  });

  it('lets go of a pool kept from the last push when, pushed again unchanged, its root has become a link out of the allowed roots', async () => {
    const node = agent();
    const moving = join(allowed, 'moving');
    const push = (generation: number) =>
      node.handle({
        v: PROTOCOL_VERSION,
        type: 'pools.desired',
        generation,
        pools: [pool('moving', { path: moving, create: true })],
      });
    await push(1);
    expect(states().moving).toMatchObject({ status: 'active', mountPath: moving });
    expect(await scanAnswer(node, 'moving')).toMatchObject({
      type: 'response',
      result: { poolId: 'moving', files: 0 },
    });
    // Between two pushes of the same definition the directory is swapped for a link to /etc.
    await rm(moving, { recursive: true });
    await symlink('/etc', moving);
    await push(2);
    expect(states().moving).toMatchObject({ status: 'error', mountPath: null });
    expect(states().moving?.reason).toContain('resolves to /etc');
    // Refused, it takes no requests: a scan no longer reads /etc.
    expect(await scanAnswer(node, 'moving')).toMatchObject({ type: 'response', error: { code: 'NOT_FOUND' } });
    await node.close();
  });
});

describe('NodeAgent pools across a reconnect', () => {
  it('says the pools it holds in its hello; a welcome that takes them as current keeps them, adopts its generation and reports at once a pool that changed meanwhile', async () => {
    const sent: NodeMessage[] = [];
    const node = localAgent(sent, { poolRecheckIntervalMs: 0 });
    const hello = () => node.hello({ hostname: 'hv', agentVersion: 't' });
    try {
      // Before any push it holds nothing to say.
      expect(hello().pools).toBeUndefined();
      const pools = [
        pool('kept', { path: join(allowed, 'kept'), create: true }),
        pool('later', { path: join(allowed, 'later') }),
      ];
      await node.handle({ v: PROTOCOL_VERSION, type: 'pools.desired', generation: 7, pools });
      const pushed = sent.at(-1);
      expect(pushed?.type === 'pools.state' && pushed.pools.map((p) => [p.poolId, p.status])).toEqual([
        ['kept', 'active'],
        ['later', 'unavailable'],
      ]);
      // The hello after the push: its generation, the fingerprint of its definitions (in any order), its states.
      expect(hello().pools).toEqual({
        generation: 7,
        fingerprint: desiredPoolsFingerprint([...pools].reverse()),
        reports: pushed?.type === 'pools.state' ? pushed.pools : [],
      });
      // While away, the missing directory appeared; the control plane's generation moved on (another node's pool).
      await mkdir(join(allowed, 'later'));
      sent.length = 0;
      await node.handle({
        v: PROTOCOL_VERSION,
        type: 'welcome',
        nodeId: 'n1',
        serverTime: new Date().toISOString(),
        protocol: PROTOCOL_VERSION,
        poolsCurrent: { generation: 9 },
      });
      expect(node.appliedGeneration).toBe(9);
      // Only the pool that changed is reported, with the generation taken from the welcome.
      expect(sent).toEqual([
        expect.objectContaining({
          type: 'pools.state',
          generation: 9,
          pools: [expect.objectContaining({ poolId: 'later', status: 'active', mountPath: join(allowed, 'later') })],
        }),
      ]);
      expect(hello().pools?.reports.map((r) => [r.poolId, r.status])).toEqual([
        ['kept', 'active'],
        ['later', 'active'],
      ]);
      // A push older than the generation adopted is ignored, as any older push is.
      await node.handle({ v: PROTOCOL_VERSION, type: 'pools.desired', generation: 8, pools: [] });
      expect(hello().pools?.reports).toHaveLength(2);
    } finally {
      await node.close();
    }
  });
});

describe('NodeAgent scans', () => {
  it("never lists a VM's own files nor files that are not ISOs, and logs one line for all of those", async () => {
    const root = join(allowed, 'scanned');
    await mkdir(join(root, 'vms', 'web'), { recursive: true });
    await makeIso(join(root, 'vms', 'web', 'seed.iso'), 'cidata');
    await makeIso(join(root, 'installer.iso'), 'Debian 12.7.0 amd64 n');
    await mkdir(join(root, 'broken'));
    for (let i = 0; i < 40; i++) await writeFile(join(root, 'broken', `fake-${i}.iso`), 'not an ISO at all\n');
    const { warnings, logger } = recordingLogger();
    const sent: NodeMessage[] = [];
    const node = localAgent(sent, { inspector: createIsoInspector({ osinfo: false }), logger });
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [pool('p', { path: root })],
    });
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'request',
      requestId: 's1',
      request: { op: 'pool.scan', poolId: 'p', content: 'iso' },
    });
    const result = sent.find((m) => m.type === 'scan.result');
    const relPaths = result?.type === 'scan.result' ? result.files.map((f) => f.relPath) : [];
    expect(relPaths).toEqual(['installer.iso']);
    // Sent as invalid, with their codes: the control plane takes a ready row of one out of service.
    const invalid = result?.type === 'scan.result' ? (result.invalid ?? []) : [];
    expect(invalid).toHaveLength(40);
    expect(new Set(invalid.map((i) => i.code))).toEqual(new Set(['ISO_NOT_ISO9660']));
    // One summary line with the count and the first few, instead of 40 lines.
    const scanWarnings = warnings.filter((w) => w.object.poolId === 'p');
    expect(scanWarnings).toHaveLength(1);
    expect(scanWarnings[0]?.message).toMatch(/^40 of 41 files could not be inspected/);
    expect(scanWarnings[0]?.object).toMatchObject({ count: 40, files: 41 });
    expect(scanWarnings[0]?.object.first).toHaveLength(5);
    expect(await readdir(join(root, 'vms', 'web'))).toEqual(['seed.iso']);
    await node.close();
  });
});

describe('console.open', () => {
  // libvirt's built-in test hypervisor (no daemon): its running domain `test` has no serial port.
  const ask = async (agent: NodeAgent) => {
    const sent: NodeMessage[] = [];
    await agent.handle(
      {
        v: PROTOCOL_VERSION,
        type: 'request',
        requestId: 'c1',
        request: { op: 'console.open', sessionId: 's1', name: 'test', type: 'serial' },
      },
      (message) => void sent.push(message),
    );
    return sent.find((m) => m.type === 'response');
  };

  it('answers CONSOLE_UNAVAILABLE when the node has no relay to the control plane, or the VM no such console', async () => {
    const hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: 'test:///default' });
    const base = { nodeId: 'n1', backends: [], poolTypes: [], hypervisor };
    const withoutRelay = new NodeAgent(base);
    expect(await ask(withoutRelay)).toMatchObject({
      error: { code: 'CONSOLE_UNAVAILABLE', message: 'This node cannot relay VM consoles' },
    });
    let dialled = 0;
    const withRelay = new NodeAgent({
      ...base,
      openConsoleChannel: async () => {
        dialled++;
        throw new Error('not reached: the console is refused before the relay is dialled');
      },
    });
    expect(await ask(withRelay)).toMatchObject({
      error: { code: 'CONSOLE_UNAVAILABLE', message: 'VM test has no serial console' },
    });
    expect(dialled).toBe(0);
    await hypervisor.close();
  });
});

describe('vm.start, vm.stop and vm.states', () => {
  // libvirt's built-in test hypervisor (no daemon), through one kept-open virsh: its domain
  // `test` runs at first, and keeps the state each command leaves it in.
  it('answer the state when the domain is already where they would take it, and refuse what does not fit', async () => {
    const hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: 'test:///default' });
    const agent = new NodeAgent({ nodeId: 'n1', backends: [], poolTypes: [], hypervisor });
    let seq = 0;
    const ask = async (request: NodeRequest) => {
      const sent: NodeMessage[] = [];
      await agent.handle(
        { v: PROTOCOL_VERSION, type: 'request', requestId: `p${++seq}`, request },
        (message) => void sent.push(message),
      );
      const response = sent.find((m) => m.type === 'response');
      return response?.type === 'response' ? response : undefined;
    };
    try {
      expect(await ask({ op: 'vm.stop', name: 'test', force: true })).toMatchObject({ result: { state: 'shutoff' } });
      // Stopped again, either way: shut off is what was asked, not an error.
      expect(await ask({ op: 'vm.stop', name: 'test', force: true })).toMatchObject({ result: { state: 'shutoff' } });
      expect(await ask({ op: 'vm.stop', name: 'test', force: false })).toMatchObject({ result: { state: 'shutoff' } });
      // A reboot of a domain that is off still is refused: nothing is rebooted.
      expect(await ask({ op: 'vm.reboot', name: 'test' })).toMatchObject({ error: { code: 'INVALID_STATE' } });
      expect(await ask({ op: 'vm.start', name: 'test' })).toMatchObject({ result: { state: 'running' } });
      expect(await ask({ op: 'vm.start', name: 'test' })).toMatchObject({ result: { state: 'running' } });
      // A domain that does not exist is not "already stopped".
      expect(await ask({ op: 'vm.stop', name: 'no-such-vm', force: true })).toMatchObject({
        error: { code: 'NOT_FOUND' },
      });
      // Many at once, in the order asked; null for a name with no domain.
      await ask({ op: 'vm.stop', name: 'test', force: true });
      expect(await ask({ op: 'vm.states', names: ['no-such-vm', 'test'] })).toMatchObject({
        result: {
          states: [
            { name: 'no-such-vm', state: null },
            { name: 'test', state: 'shutoff' },
          ],
        },
      });
    } finally {
      await hypervisor.close();
    }
  });
});

describe('NodeAgent file.export', () => {
  // A real pool directory and real files; the channel is a PassThrough standing in for the
  // WebSocket the node daemon dials (the agent sees only a Duplex either way).
  const exportAgent = async (dialled: PassThrough[]) => {
    const root = join(allowed, 'export-pool');
    const sent: NodeMessage[] = [];
    const node = localAgent(sent, {
      openExportChannel: async () => {
        const channel = new PassThrough();
        dialled.push(channel);
        return channel;
      },
    });
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [pool('exp', { path: root, create: true })],
    });
    const ask = async (request: Record<string, unknown>) => {
      sent.length = 0;
      await node.handle({
        v: PROTOCOL_VERSION,
        type: 'request',
        requestId: 'x1',
        request: { op: 'file.export', sessionId: 's1', poolId: 'exp', ...request },
      });
      return sent.find((m) => m.type === 'response');
    };
    return { node, root, ask };
  };

  it('streams the range asked for, and refuses paths out of the pool, missing files, a changed size and bad ranges', async () => {
    const dialled: PassThrough[] = [];
    const { node, root, ask } = await exportAgent(dialled);
    const bytes = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
    await writeFile(join(root, 'disk.raw'), bytes);
    await writeFile(join(base, 'secret.raw'), 'outside the pool');
    await symlink(join(base, 'secret.raw'), join(root, 'link-out.raw'));

    const answer = await ask({ relPath: 'disk.raw', start: 1000, end: 98_999, expectedSize: bytes.length });
    expect(answer).toMatchObject({ result: { sessionId: 's1', sizeBytes: bytes.length } });
    const received: Buffer[] = [];
    for await (const chunk of dialled[0] as PassThrough) received.push(chunk as Buffer);
    expect(Buffer.concat(received).equals(bytes.subarray(1000, 99_000))).toBe(true);

    for (const [relPath, code] of [
      ['../secret.raw', 'PATH_ESCAPES_POOL'],
      ['/etc/passwd', 'PATH_ESCAPES_POOL'],
      ['link-out.raw', 'PATH_ESCAPES_POOL'],
      ['absent.raw', 'IMAGE_FILE_MISSING'],
    ] as const) {
      expect(await ask({ relPath, start: 0, end: 0, expectedSize: 16 }), relPath).toMatchObject({
        error: { code },
      });
    }
    expect(await ask({ relPath: 'disk.raw', start: 0, end: 10, expectedSize: 5 })).toMatchObject({
      error: { code: 'IMAGE_FILE_CHANGED' },
    });
    expect(await ask({ relPath: 'disk.raw', start: 0, end: bytes.length, expectedSize: bytes.length })).toMatchObject({
      error: { code: 'RANGE_NOT_SATISFIABLE' },
    });
    // Only the one good request dialled a channel.
    expect(dialled).toHaveLength(1);
    await node.close();
  });

  it('stops reading when the channel closes early (the client went away)', async () => {
    const dialled: PassThrough[] = [];
    const { node, root, ask } = await exportAgent(dialled);
    const size = 64 * 1024 * 1024;
    await writeFile(join(root, 'big.raw'), Buffer.alloc(size, 7));
    expect(await ask({ relPath: 'big.raw', start: 0, end: size - 1, expectedSize: size })).toMatchObject({
      result: { sizeBytes: size },
    });
    const channel = dialled[0] as PassThrough;
    // Read one chunk, then go away: the node's read must end and its descriptor close.
    await new Promise((resolve) => channel.once('data', resolve));
    channel.destroy();
    const deadline = Date.now() + 10_000;
    const openOnFile = async () => {
      const fds = await readdir('/proc/self/fd');
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((target) => target === join(root, 'big.raw')).length;
    };
    while ((await openOnFile()) > 0) {
      if (Date.now() > deadline) throw new Error('the node still holds the exported file open');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await node.close();
  });
});

describe('NodeAgent file.copy', () => {
  it('copies between pools verified, and refuses paths out of either pool, a wrong checksum and an existing target', async () => {
    const sent: NodeMessage[] = [];
    const from = join(allowed, 'copy-from');
    const to = join(allowed, 'copy-to');
    const node = localAgent(sent);
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [pool('from', { path: from, create: true }), pool('to', { path: to, create: true })],
    });
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
    const sum = createHash('sha256').update(bytes).digest('hex');
    await mkdir(join(from, 'images'), { recursive: true });
    await writeFile(join(from, 'images/disk.raw'), bytes);
    await writeFile(join(base, 'secret.raw'), 'outside the pools');
    const ask = async (request: Record<string, unknown>) => {
      sent.length = 0;
      await node.handle({
        v: PROTOCOL_VERSION,
        type: 'request',
        requestId: 'c1',
        request: {
          op: 'file.copy',
          imageId: 'img-1',
          sourcePoolId: 'from',
          sourceRelPath: 'images/disk.raw',
          poolId: 'to',
          relPath: 'images/disk.raw',
          checksum: { algorithm: 'sha256', value: sum },
          ...request,
        },
      });
      return sent.find((m) => m.type === 'response');
    };

    expect(await ask({})).toMatchObject({ result: { sizeBytes: bytes.length, checksum: { value: sum } } });
    // It says how far it is, as a download does; the last report is every byte.
    expect(sent.filter((m) => m.type === 'image.progress').at(-1)).toMatchObject({
      imageId: 'img-1',
      bytesDone: bytes.length,
      bytesTotal: bytes.length,
    });
    expect((await readFile(join(to, 'images/disk.raw'))).equals(bytes)).toBe(true);
    expect(existsSync(join(to, 'images/disk.raw.partial'))).toBe(false);
    // Asked again once done (a control plane that restarted meanwhile): answered from the file.
    expect(await ask({})).toMatchObject({ result: { sizeBytes: bytes.length, checksum: { value: sum } } });
    // Another file already at the target: refused, and left as it was.
    await writeFile(join(to, 'images/taken.raw'), 'someone else’s');
    expect(await ask({ relPath: 'images/taken.raw' })).toMatchObject({ error: { code: 'ALREADY_EXISTS' } });
    expect(await readFile(join(to, 'images/taken.raw'), 'utf8')).toBe('someone else’s');

    for (const [request, code] of [
      [{ sourceRelPath: '../secret.raw' }, 'PATH_ESCAPES_POOL'],
      [{ relPath: '../stolen.raw' }, 'PATH_ESCAPES_POOL'],
      [{ relPath: '/tmp/stolen.raw' }, 'PATH_ESCAPES_POOL'],
      [{ sourceRelPath: 'images/absent.raw' }, 'IMAGE_FILE_MISSING'],
      [{ poolId: 'from', relPath: 'images/disk.raw' }, 'ALREADY_EXISTS'],
    ] as const) {
      expect(await ask(request), JSON.stringify(request)).toMatchObject({ error: { code } });
    }
    expect(existsSync(join(base, 'stolen.raw'))).toBe(false);

    // Bytes that are not the checksum's: refused, nothing left behind.
    expect(
      await ask({ relPath: 'images/other.raw', checksum: { algorithm: 'sha256', value: 'a'.repeat(64) } }),
    ).toMatchObject({
      error: { code: 'CHECKSUM_MISMATCH' },
    });
    expect(existsSync(join(to, 'images/other.raw'))).toBe(false);
    expect(existsSync(join(to, 'images/other.raw.partial'))).toBe(false);
    await node.close();
  });

  it('refuses a copy into a pool without room before writing a byte (POOL_NO_SPACE)', async () => {
    // The target pool on a real 1 MiB file system; the image is 2 MiB.
    const mounted = mountSmallFilesystem('1m');
    const sent: NodeMessage[] = [];
    const node = localAgent(sent, { poolRoots: createPoolRootPolicy({ allowedRoots: [allowed, mounted.path] }) });
    try {
      const from = join(allowed, 'full-from');
      await node.handle({
        v: PROTOCOL_VERSION,
        type: 'pools.desired',
        generation: 1,
        pools: [pool('ff', { path: from, create: true }), pool('ft', { path: mounted.path })],
      });
      const bytes = Buffer.alloc(2 * 1024 * 1024, 3);
      await writeFile(join(from, 'big.raw'), bytes);
      await node.handle({
        v: PROTOCOL_VERSION,
        type: 'request',
        requestId: 'c3',
        request: {
          op: 'file.copy',
          imageId: 'img-3',
          sourcePoolId: 'ff',
          sourceRelPath: 'big.raw',
          poolId: 'ft',
          relPath: 'big.raw',
          checksum: { algorithm: 'sha256', value: createHash('sha256').update(bytes).digest('hex') },
        },
      });
      const answer = sent.find((m) => m.type === 'response' && m.requestId === 'c3');
      expect(answer).toMatchObject({
        error: {
          code: 'POOL_NO_SPACE',
          message: expect.stringMatching(
            /^No room in the pool for big\.raw in pool ft: 2097152 bytes needed, \d+ available/,
          ),
        },
      });
      // Refused before a byte was written: no progress, no partial file.
      expect(sent.filter((m) => m.type === 'image.progress')).toEqual([]);
      expect(await readdir(mounted.path)).toEqual([]);
    } finally {
      await node.close();
      mounted.unmount();
    }
  });

  it('stops a copy on image.cancel between chunks, leaving nothing', async () => {
    const from = join(allowed, 'cancel-from');
    const to = join(allowed, 'cancel-to');
    const sent: NodeMessage[] = [];
    let cancelled = false;
    const node: NodeAgent = new NodeAgent({
      nodeId: 'n1',
      ...localPools(allowed),
      send: (message) => {
        sent.push(message);
        // Cancelled as soon as the first progress shows the copy under way.
        if (message.type === 'image.progress' && !cancelled) {
          cancelled = true;
          void node.handle({
            v: PROTOCOL_VERSION,
            type: 'request',
            requestId: 'cancel',
            request: { op: 'image.cancel', imageId: 'img-2' },
          });
        }
      },
    });
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [pool('cf', { path: from, create: true }), pool('ct', { path: to, create: true })],
    });
    await mkdir(join(from, 'images'), { recursive: true });
    // 256 MiB: hundreds of chunks, so the cancel lands long before the end.
    await writeFile(join(from, 'images/big.raw'), Buffer.alloc(256 * 1024 * 1024, 7));
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'request',
      requestId: 'c2',
      request: {
        op: 'file.copy',
        imageId: 'img-2',
        sourcePoolId: 'cf',
        sourceRelPath: 'images/big.raw',
        poolId: 'ct',
        relPath: 'images/big.raw',
        // Not these bytes' checksum: a copy that ran to its end would say CHECKSUM_MISMATCH.
        checksum: { algorithm: 'sha256', value: 'b'.repeat(64) },
      },
    });
    expect(sent.find((m) => m.type === 'response' && m.requestId === 'c2')).toMatchObject({
      error: { code: 'DOWNLOAD_CANCELLED' },
    });
    expect(sent.find((m) => m.type === 'response' && m.requestId === 'cancel')).toMatchObject({
      result: { cancelled: true },
    });
    expect(existsSync(join(to, 'images/big.raw'))).toBe(false);
    expect(existsSync(join(to, 'images/big.raw.partial'))).toBe(false);
    await node.close();
  });
});
