/**
 * The whole system as a user runs it, from real processes: `quantix serve` on PostgreSQL, two
 * `quantix-node` daemons, nfs-ganesha exporting /srv/nfs/qVDS01, libvirtd, and an HTTP mirror
 * serving real qcow2 images with SHA256SUMS.
 *
 * The one stand-in: this kernel cannot mount NFS, so node 1 reads a mount-table file (real
 * /proc/self/mountinfo format) that says the export is mounted at /srv/nfs/qVDS01 — the very
 * directory ganesha exports. The server, its answers to the node's checks, and the ISO files are real.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, requireTools, type TestDatabase } from '@quantix/core/testing';
import {
  createImage,
  type ImageServer,
  makeQcow2,
  makeVmdkDescriptorNaming,
  sha256Sums,
  startImageServer,
} from '@quantix/images-cloud/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiCaller, waitFor } from './harness.js';
import { freePort, type Proc, QUANTIX, QUANTIX_NODE, startProcess, stopProcess } from './processes.js';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '../../..');
const NFS_EXPORT = '/srv/nfs/qVDS01';
const API_TOKEN = 'e2e-api-token';

describe('Quantix end to end (real processes)', { timeout: 300_000 }, () => {
  let testDb: TestDatabase;
  let work: string;
  let mirror: ImageServer;
  let cp: Proc | undefined;
  let cpUrl = '';
  let cpPort = 0;
  const daemons: Record<string, Proc | undefined> = {};
  const tokens: Record<string, string> = {};
  let catalogFile = '';
  let mountTable = '';
  let localPool = '';

  const api = apiCaller(() => cpUrl, API_TOKEN);

  async function startControlPlane(): Promise<void> {
    // The same port every time: the node daemons redial the address they were given.
    // Pools may be in the test's directory, and where the defaults put them (the NFS export's mount).
    const poolRoots = ['--pool-root', work, '--pool-root', '/var/lib/quantix', '--pool-root', '/srv'];
    cp = startProcess(
      [QUANTIX, 'serve', '--host', '127.0.0.1', '--port', String(cpPort), '--catalog', catalogFile, ...poolRoots],
      {
        QUANTIX_DATABASE_URL: (testDb.config as { connectionString: string }).connectionString,
        QUANTIX_API_TOKEN: API_TOKEN,
        // VM records checked against libvirt every second, not every 30: the test below waits for it.
        QUANTIX_VM_STATE_SECONDS: '1',
      },
    );
    const proc = cp;
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`quantix serve exited with ${proc.child.exitCode}`);
        return proc.output.join('').includes('"event":"listening"');
      },
      'the control plane to listen',
      60_000,
    ).catch((error) => {
      throw new Error(`${(error as Error).message}\n${proc.output.join('')}`);
    });
    cpUrl = (
      JSON.parse(
        proc.output
          .join('')
          .split('\n')
          .find((l) => l.includes('"event":"listening"')) as string,
      ) as { url: string }
    ).url;
  }

  function startDaemon(nodeId: string): void {
    daemons[nodeId] = startProcess(
      [
        QUANTIX_NODE,
        '--url',
        cpUrl,
        '--node-id',
        nodeId,
        '--token',
        tokens[nodeId] as string,
        '--libvirt',
        'qemu:///system',
        '--allow-source',
        '127.0.0.1',
        '--mount-table',
        mountTable,
        '--hostname',
        nodeId,
      ],
      // node-1 may hold pools in the test's directory too (and where NFS pools are mounted by
      // default, /var/lib/quantix/pools/<id>, and found, /srv); node-2 keeps the default roots.
      nodeId === 'node-1' ? { QUANTIX_POOL_ROOTS: `${work}:/var/lib/quantix:/srv` } : {},
    );
  }

  async function nodeConnected(nodeId: string) {
    await waitFor(
      async () => (await api('GET', `/nodes/${nodeId}`)).body?.connected === true,
      `${nodeId} to connect`,
      60_000,
    );
  }

  beforeAll(async () => {
    await run('bash', [join(repoRoot, 'scripts/services.sh'), 'postgres', 'libvirt'], { timeout: 900_000 });
    testDb = await createTestDatabase('pg');
    work = await mkdtemp(join(tmpdir(), 'quantix-system-'));
    localPool = join(work, 'pool-local');

    // The NFS export at the non-standard path, with real ISOs in it.
    await rm(NFS_EXPORT, { recursive: true, force: true });
    await mkdir(join(work, 'iso-src'), { recursive: true });
    await writeFile(join(work, 'iso-src', 'README.txt'), 'installer\n');
    await mkdir(join(NFS_EXPORT, 'installers'), { recursive: true });
    requireTools({ program: 'xorriso', debianPackage: 'xorriso' });
    await run('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'Debian 12.7.0 amd64 n',
      '-J',
      '-R',
      '-o',
      join(NFS_EXPORT, 'installers/debian-12.7.0-amd64-netinst.iso'),
      join(work, 'iso-src'),
    ]);
    await run('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'Ubuntu-Server 24.04.1 LTS amd64',
      '-J',
      '-R',
      '-o',
      join(NFS_EXPORT, 'ubuntu-24.04.1-live-server-amd64.iso'),
      join(work, 'iso-src'),
    ]);
    await run('bash', [join(repoRoot, 'scripts/nfs-server.sh'), 'start', NFS_EXPORT], { timeout: 120_000 });
    mountTable = join(work, 'mountinfo');
    await writeFile(
      mountTable,
      `36 25 0:40 / ${NFS_EXPORT} rw,relatime shared:20 - nfs4 127.0.0.1:${NFS_EXPORT} rw,vers=4.2,addr=127.0.0.1\n`,
    );

    mirror = await startImageServer();
    const small = await makeQcow2(work, 'small.qcow2', 2);
    const slow = await makeQcow2(work, 'slow.qcow2', 6);
    mirror.setFile('/cloud/small.qcow2', small);
    mirror.setFile('/cloud/slow.qcow2', slow);
    mirror.setFile('/cloud/SHA256SUMS', sha256Sums({ 'small.qcow2': small, 'slow.qcow2': slow }));
    const entry = (id: string, file: string) => ({
      id,
      name: `E2E ${file}`,
      kind: 'cloud',
      format: 'qcow2',
      os: { family: 'linux', distribution: 'e2e', version: '1', arch: 'x86_64', defaultUser: 'e2e', cloudInit: true },
      requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' },
      sourceUrl: `${mirror.url}/cloud/${file}`,
      checksumUrl: `${mirror.url}/cloud/SHA256SUMS`,
      checksumAlgorithm: 'sha256',
    });
    catalogFile = join(work, 'catalog.json');
    await writeFile(
      catalogFile,
      JSON.stringify([
        entry('e2e-small', 'small.qcow2'),
        entry('e2e-slow', 'slow.qcow2'),
        entry('e2e-never', 'never.qcow2'),
      ]),
    );

    cpPort = await freePort();
    await startControlPlane();
    for (const nodeId of ['node-1', 'node-2']) {
      const created = await api('POST', '/nodes', { id: nodeId, hostname: nodeId });
      expect(created.status).toBe(201);
      tokens[nodeId] = created.body.token;
      startDaemon(nodeId);
    }
    await nodeConnected('node-1');
    await nodeConnected('node-2');
  }, 900_000);

  afterAll(async () => {
    const vms = cpUrl ? await api('GET', '/vms').catch(() => null) : null;
    for (const vm of (vms?.body?.vms ?? []) as { id: string }[])
      await api('DELETE', `/vms/${vm.id}`).catch(() => undefined);
    await Promise.all(Object.values(daemons).map((d) => stopProcess(d)));
    await stopProcess(cp);
    await mirror?.close();
    await run('bash', [join(repoRoot, 'scripts/nfs-server.sh'), 'stop']).catch(() => undefined);
    await testDb?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('refuses the API without the token and a node with a wrong token', async () => {
    expect((await api('GET', '/pools', undefined, 'wrong')).status).toBe(401);
    const impostor = startProcess(
      [
        QUANTIX_NODE,
        '--url',
        cpUrl,
        '--node-id',
        'node-1',
        '--token',
        'not-the-token',
        '--libvirt',
        'none',
        '--log-level',
        'error',
      ],
      {},
    );
    await waitFor(
      async () => impostor.output.join('').includes('refused this node token'),
      'the impostor to be refused',
      20_000,
    );
    await stopProcess(impostor);
    expect((await api('GET', '/nodes/node-1')).body.connected).toBe(true);
  });

  it('finds the NFS pool mounted at /srv/nfs/qVDS01, scans its ISOs, and does it again after the node daemon restarts', async () => {
    const pool = await api('POST', '/pools', {
      id: 'nfs-iso',
      name: 'ISO library (NFS)',
      type: 'nfs',
      config: { server: '127.0.0.1', export: NFS_EXPORT },
      contentTypes: ['iso'],
      shared: true,
      nodeIds: ['node-1'],
    });
    expect(pool.status).toBe(201);
    const listed = async () => (await api('GET', '/images?kind=iso&poolId=nfs-iso&nodeId=node-1')).body;
    await waitFor(async () => (await listed()).total === 2, 'the ISOs on the NFS pool to be listed', 60_000);
    const state = (await api('GET', '/pools/nfs-iso')).body.nodeStates[0];
    expect(state).toMatchObject({ nodeId: 'node-1', status: 'active', mountPath: NFS_EXPORT });
    const isos = (await listed()).images as { name: string; path: string; os: { distribution: string | null } }[];
    expect(isos.map((i) => i.path).sort()).toEqual([
      `${NFS_EXPORT}/installers/debian-12.7.0-amd64-netinst.iso`,
      `${NFS_EXPORT}/ubuntu-24.04.1-live-server-amd64.iso`,
    ]);
    expect(isos.map((i) => i.os.distribution).sort()).toEqual(['debian', 'ubuntu']);

    // Restart the node daemon: it keeps nothing, is told its pools again, finds the mount again.
    await stopProcess(daemons['node-1']);
    await waitFor(async () => (await api('GET', '/nodes/node-1')).body.connected === false, 'node-1 to be seen gone');
    await writeFile(
      join(NFS_EXPORT, 'added-while-down.iso'),
      await (await import('node:fs/promises')).readFile(join(NFS_EXPORT, 'installers/debian-12.7.0-amd64-netinst.iso')),
    );
    startDaemon('node-1');
    await nodeConnected('node-1');
    await waitFor(
      async () => (await listed()).total === 3,
      'the ISO added while the node was down to be listed',
      60_000,
    );
    const after = (await api('GET', '/pools/nfs-iso')).body.nodeStates[0];
    expect(after).toMatchObject({ status: 'active', mountPath: NFS_EXPORT });
    expect(after.syncedGeneration).toBeGreaterThanOrEqual(state.syncedGeneration);
  });

  it('refuses pool roots outside the policy: on the control plane at definition, and on a node that does not allow them', async () => {
    for (const path of ['/', '/etc', '../..', join(work, '..')]) {
      const refused = await api('POST', '/pools', {
        name: 'bad',
        type: 'local',
        config: { path },
        nodeIds: ['node-2'],
      });
      expect(refused).toMatchObject({ status: 400, body: { error: { code: 'POOL_ROOT_NOT_ALLOWED' } } });
    }
    // Inside the control plane's roots, but not node-2's (its default: /var/lib/quantix, /srv).
    const pool = await api('POST', '/pools', {
      id: 'node2-tmp',
      name: 'node-2 tmp',
      type: 'local',
      config: { path: join(work, 'node2-pool'), create: true },
      nodeIds: ['node-2'],
    });
    expect(pool.status).toBe(201);
    await waitFor(
      async () => (await api('GET', '/pools/node2-tmp')).body.nodeStates[0]?.status === 'error',
      'node-2 to refuse the pool',
    );
    const state = (await api('GET', '/pools/node2-tmp')).body.nodeStates[0];
    expect(state.lastError).toContain(
      'outside the allowed pool roots; pool roots must lie inside one of /var/lib/quantix, /srv',
    );
    expect(existsSync(join(work, 'node2-pool'))).toBe(false);
    expect((await api('DELETE', '/pools/node2-tmp')).status).toBe(204);
  });

  it('downloads into a node-local pool, shows the available view, refuses VMs from images that are not ready, and runs one from a ready image', async () => {
    await api('POST', '/pools', {
      id: 'local-1',
      name: 'node-1 local',
      type: 'local',
      config: { path: localPool, create: true },
      contentTypes: ['images', 'iso'],
      nodeIds: ['node-1'],
    });
    await waitFor(
      async () => (await api('GET', '/pools/local-1')).body.nodeStates[0]?.status === 'active',
      'the local pool to be active',
    );
    const small = (await api('POST', '/images/download', { catalogId: 'e2e-small', poolId: 'local-1' })).body;
    await waitFor(
      async () => (await api('GET', `/images/${small.id}`)).body.phase === 'ready',
      'the small image to be ready',
      120_000,
    );
    const ready = (await api('GET', `/images/${small.id}?nodeId=node-1`)).body;
    expect(ready).toMatchObject({
      phase: 'ready',
      format: 'qcow2',
      path: `${localPool}/images/e2e-small.qcow2`,
      checksum: { algorithm: 'sha256' },
    });

    mirror.behaviour.bytesPerSecond = 1024 * 1024;
    const slow = (await api('POST', '/images/download', { catalogId: 'e2e-slow', poolId: 'local-1' })).body;
    await waitFor(
      async () => (await api('GET', `/images/${slow.id}`)).body.progress?.bytesDone > 0,
      'the slow download to make progress',
    );
    const view = (await api('GET', '/images/available?nodeId=node-1')).body.images as {
      catalogId: string | null;
      status: string;
      path: string | null;
      progress: unknown;
    }[];
    const byCatalog = Object.fromEntries(view.filter((i) => i.catalogId).map((i) => [i.catalogId, i]));
    expect(byCatalog['e2e-small']).toMatchObject({ status: 'ready', path: `${localPool}/images/e2e-small.qcow2` });
    expect(byCatalog['e2e-slow']).toMatchObject({ status: 'downloading' });
    expect(byCatalog['e2e-slow']?.progress).toBeTruthy();
    expect(byCatalog['e2e-never']).toMatchObject({ status: 'not-downloaded', path: null });
    // Node 2 does not hold the local pool: the ready image is not a choice there.
    const onNode2 = (await api('GET', '/images/available?nodeId=node-2')).body.images as {
      catalogId: string;
      selectable: boolean;
    }[];
    expect(onNode2.find((i) => i.catalogId === 'e2e-small')?.selectable ?? false).toBe(false);

    const notReady = await api('POST', '/vms', {
      name: 'e2e-not-ready',
      nodeId: 'node-1',
      imageId: slow.id,
      memoryMiB: 64,
      diskGiB: 1,
    });
    expect(notReady).toMatchObject({ status: 409, body: { error: { code: 'IMAGE_NOT_READY' } } });
    const wrongNode = await api('POST', '/vms', {
      name: 'e2e-wrong-node',
      nodeId: 'node-2',
      imageId: small.id,
      memoryMiB: 64,
      diskGiB: 1,
    });
    expect(wrongNode).toMatchObject({ status: 409, body: { error: { code: 'POOL_NOT_ACTIVE_ON_NODE' } } });

    const vm = await api('POST', '/vms', {
      name: `e2e-vm-${process.pid}`,
      nodeId: 'node-1',
      imageId: small.id,
      memoryMiB: 64,
      diskGiB: 1,
    });
    expect(vm).toMatchObject({ status: 201, body: { state: 'running' } });
    const { stdout } = await run('virsh', ['-c', 'qemu:///system', 'domstate', vm.body.name]);
    expect(stdout.trim()).toBe('running');

    // The disk holds no OS, so nothing in the guest acts on an ACPI shutdown: a stop without force
    // says so instead of claiming success, and force then powers it off.
    const domstate = async () => (await run('virsh', ['-c', 'qemu:///system', 'domstate', vm.body.name])).stdout.trim();
    const ignored = await api('POST', `/vms/${vm.body.id}/stop`, { timeoutSeconds: 1 });
    expect(ignored).toMatchObject({ status: 409, body: { error: { code: 'VM_DID_NOT_STOP' } } });
    expect(await domstate()).toBe('running');
    expect((await api('GET', `/vms/${vm.body.id}`)).body.state).toBe('running');
    const forced = await api('POST', `/vms/${vm.body.id}/stop`, { force: true, timeoutSeconds: 1 });
    expect(forced).toMatchObject({ status: 200, body: { state: 'stopped' } });
    expect(await domstate()).toBe('shut off');
    expect(await api('POST', `/vms/${vm.body.id}/start`)).toMatchObject({ status: 200, body: { state: 'running' } });
    expect(await domstate()).toBe('running');
    // Powered off behind Quantix's back (a guest's own shutdown looks the same to libvirt): the
    // record follows within a period of the check, and stopping the VM again is no error.
    await run('virsh', ['-c', 'qemu:///system', 'destroy', vm.body.name]);
    await waitFor(
      async () => (await api('GET', `/vms/${vm.body.id}`)).body.state === 'stopped',
      'the VM record to follow its domain',
      30_000,
    );
    expect(await api('POST', `/vms/${vm.body.id}/stop`, { force: true })).toMatchObject({
      status: 200,
      body: { state: 'stopped' },
    });
    expect(await api('POST', `/vms/${vm.body.id}/start`)).toMatchObject({ status: 200, body: { state: 'running' } });
    expect(await domstate()).toBe('running');
    // Paused behind Quantix's back (as QEMU pauses a guest whose disk cannot be written): the
    // record says so, and starting the VM lets it run on.
    await run('virsh', ['-c', 'qemu:///system', 'suspend', vm.body.name]);
    await waitFor(
      async () => (await api('GET', `/vms/${vm.body.id}`)).body.state === 'paused',
      'the VM record to say paused',
      30_000,
    );
    // A paused guest cannot shut itself down: an ACPI stop says so at once, and queues nothing.
    const acpi = await api('POST', `/vms/${vm.body.id}/stop`, { force: false });
    expect(acpi).toMatchObject({ status: 409, body: { error: { code: 'INVALID_STATE' } } });
    expect(acpi.body.error.message).toContain(`VM '${vm.body.name}' is paused: its guest cannot shut itself down`);
    expect(await domstate()).toBe('paused');
    expect(await api('POST', `/vms/${vm.body.id}/start`)).toMatchObject({ status: 200, body: { state: 'running' } });
    expect(await domstate()).toBe('running');

    await waitFor(
      async () => (await api('GET', `/images/${slow.id}`)).body.phase === 'ready',
      'the slow image to finish',
      120_000,
    );
    mirror.behaviour.bytesPerSecond = null;
  });

  it('imports an OVA through POST /images/import: converted on the node, OVF facts in vm-defaults; an unsafe VMDK ends in IMAGE_UNSAFE', async () => {
    const ova = join(work, 'import-ova');
    await mkdir(ova, { recursive: true });
    await createImage({
      path: join(ova, 'app-disk1.vmdk'),
      format: 'vmdk',
      size: '2G',
      options: ['subformat=streamOptimized'],
    });
    await writeFile(
      join(ova, 'app.ovf'),
      `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
        xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
        <References><File ovf:id="f1" ovf:href="app-disk1.vmdk"/></References>
        <DiskSection><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="2" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
        <VirtualSystem ovf:id="app"><Name>E2E Appliance</Name><VirtualHardwareSection>
          <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
          <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>3072</rasd:VirtualQuantity></Item>
        </VirtualHardwareSection></VirtualSystem></Envelope>`,
    );
    await run('tar', ['-cf', join(work, 'app.ova'), '-C', ova, 'app.ovf', 'app-disk1.vmdk']);
    const ovaBytes = await readFile(join(work, 'app.ova'));
    mirror.setFile('/import/app.ova', ovaBytes);
    await makeVmdkDescriptorNaming(join(work, 'passwd.vmdk'), '/etc/passwd');
    const passwdVmdk = await readFile(join(work, 'passwd.vmdk'));
    mirror.setFile('/import/passwd.vmdk', passwdVmdk);
    mirror.behaviour.bytesPerSecond = null;

    const importPool = join(work, 'pool-import');
    await api('POST', '/pools', {
      id: 'import-1',
      name: 'node-1 imports',
      type: 'local',
      config: { path: importPool, create: true },
      contentTypes: ['images'],
      nodeIds: ['node-1'],
    });
    await waitFor(
      async () => (await api('GET', '/pools/import-1')).body.nodeStates[0]?.status === 'active',
      'the import pool to be active',
    );
    const started = await api('POST', '/images/import', {
      url: `${mirror.url}/import/app.ova`,
      sha256: createHash('sha256').update(ovaBytes).digest('hex'),
      poolId: 'import-1',
    });
    expect(started.status).toBe(202);
    await waitFor(
      async () => ['ready', 'error'].includes((await api('GET', `/images/${started.body.id}`)).body.phase),
      'the import to end',
      120_000,
    );
    const image = (await api('GET', `/images/${started.body.id}?nodeId=node-1`)).body;
    expect(image).toMatchObject({
      phase: 'ready',
      format: 'qcow2',
      path: `${importPool}/images/app.qcow2`,
      virtualSizeBytes: 2 * 1024 ** 3,
      requirements: { minCpu: 2, minMemoryMiB: 3072, minDiskGiB: 2 },
      labels: { 'quantix.io/ovf-name': 'E2E Appliance', 'quantix.io/import-source-format': 'vmdk' },
    });
    const onDisk = await readFile(join(importPool, 'images', 'app.qcow2'));
    expect(image.checksum).toEqual({ algorithm: 'sha256', value: createHash('sha256').update(onDisk).digest('hex') });
    expect((await readdir(join(importPool, 'images'))).sort()).toEqual(['app.qcow2']);
    const defaults = (await api('GET', `/images/${started.body.id}/vm-defaults`)).body;
    expect(defaults.cpu).toBeGreaterThanOrEqual(2);
    expect(defaults.memoryMiB).toBeGreaterThanOrEqual(3072);

    const unsafe = await api('POST', '/images/import', {
      url: `${mirror.url}/import/passwd.vmdk`,
      sha256: createHash('sha256').update(passwdVmdk).digest('hex'),
      poolId: 'import-1',
    });
    expect(unsafe.status).toBe(202);
    await waitFor(
      async () => (await api('GET', `/images/${unsafe.body.id}`)).body.phase === 'error',
      'the unsafe import to fail',
      60_000,
    );
    expect((await api('GET', `/images/${unsafe.body.id}`)).body.error).toMatchObject({
      code: 'IMAGE_UNSAFE',
      retryable: false,
    });
    expect((await readdir(join(importPool, 'images'))).sort()).toEqual(['app.qcow2']);
  });

  it('keeps every image, pool and VM across a control-plane restart, field for field', async () => {
    const before = {
      images: (await api('GET', '/images?limit=1000')).body.images,
      pools: (await api('GET', '/pools')).body.pools.map((p: Record<string, unknown>) => ({
        ...p,
        nodeStates: undefined,
      })),
      vms: (await api('GET', '/vms')).body.vms,
    };
    expect(before.images.length).toBeGreaterThanOrEqual(5);
    expect(before.vms.length).toBe(1);
    await stopProcess(cp);
    await startControlPlane();
    const after = {
      images: (await api('GET', '/images?limit=1000')).body.images,
      pools: (await api('GET', '/pools')).body.pools.map((p: Record<string, unknown>) => ({
        ...p,
        nodeStates: undefined,
      })),
      vms: (await api('GET', '/vms')).body.vms,
    };
    expect(after).toEqual(before);
    // The daemons redial the restarted control plane on their own.
    await nodeConnected('node-1');
    await nodeConnected('node-2');
  });

  it('never leaves a download stuck when the control plane is killed mid-way', async () => {
    // After the restart above, pool states are unknown until node-1 reports them again.
    await waitFor(
      async () => (await api('GET', '/pools/local-1')).body.nodeStates[0]?.status === 'active',
      'the local pool to be reported active again',
      60_000,
    );
    mirror.behaviour.bytesPerSecond = 512 * 1024;
    const started = await api('POST', '/images/download', { catalogId: 'e2e-never-mind', poolId: 'local-1' });
    expect(started.body.error.code).toBe('NOT_FOUND'); // unknown catalog entries are refused up front
    await api('DELETE', `/images/${(await api('GET', '/images?catalogId=e2e-slow')).body.images[0].id}`);
    const again = (await api('POST', '/images/download', { catalogId: 'e2e-slow', poolId: 'local-1' })).body;
    await waitFor(
      async () => (await api('GET', `/images/${again.id}`)).body.progress?.bytesDone > 0,
      'the download to be under way',
    );
    await stopProcess(cp, 'SIGKILL');
    mirror.behaviour.bytesPerSecond = null;
    await startControlPlane();
    await nodeConnected('node-1');
    await waitFor(
      async () => ['ready', 'error'].includes((await api('GET', `/images/${again.id}`)).body.phase),
      'the killed download to settle',
      180_000,
    );
    const settled = (await api('GET', `/images/${again.id}`)).body;
    if (settled.phase === 'error') expect(settled.error.retryable).toBe(true);
    else expect(settled.checksum.value).toMatch(/^[0-9a-f]{64}$/);
  });
});
