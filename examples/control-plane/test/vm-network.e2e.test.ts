/**
 * A VM people can reach, from real processes: `quantix serve` on PostgreSQL, a `quantix-node`
 * daemon driving libvirtd, libvirt's `default` NAT network (dnsmasq hands out the address), and
 * a guest that really boots — Debian's kernel with a busybox init and dropbear, built at set-up
 * by scripts/make-test-guest.sh and served from an HTTP mirror as a raw cloud image.
 *
 * The guest does what cloud-init does for this test: it reads the NoCloud seed Quantix attaches,
 * installs the SSH keys of its user-data for root, takes an address by DHCP and runs sshd. The
 * test then logs in over SSH with the key it gave, at the address the API reports.
 *
 * The guest runs under TCG (`--virt-type qemu`): the KVM of these machines is nested and cannot
 * run a BIOS boot loader's real-mode switches (ISOLINUX stops with "KVM internal error:
 * emulation failure"; GRUB takes minutes to read a kernel; OVMF stops the same way). TCG boots
 * it in about 30 s. Nothing about networks or addresses differs between the two.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, requireTools, type TestDatabase } from '@quantix/core/testing';
import { type ImageServer, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { buildIso } from '@quantix/images-iso/testing';
import { quoteArgv } from '@quantix/node-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGuestImage } from './guest.js';
import { apiCaller, waitFor } from './harness.js';
import { freePort, type Proc, QUANTIX, QUANTIX_NODE, startProcess, stopProcess } from './processes.js';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '../../..');
const API_TOKEN = 'e2e-network-token';
const NODE = 'node-net';
const VM_NAME = `e2e-net-${process.pid}`;

describe('VMs people can reach (real processes, a guest that boots)', { timeout: 600_000 }, () => {
  let testDb: TestDatabase;
  let work: string;
  let mirror: ImageServer;
  let cp: Proc | undefined;
  let daemon: Proc | undefined;
  let cpUrl = '';
  let imageId = '';
  let privateKey = '';
  let publicKey = '';
  /** A tmpfs too small for what a guest writes: a pool that runs out of room. */
  let smallPool = '';

  const api = apiCaller(() => cpUrl, API_TOKEN);

  /** The `quantix` CLI against this control plane: its exit code and what it printed. */
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [QUANTIX, '--url', cpUrl, ...args], {
        env: { ...process.env, QUANTIX_TOKEN: API_TOKEN },
        timeout: 240_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  };

  const virsh = async (...args: string[]) => (await run('virsh', ['-c', 'qemu:///system', ...args])).stdout;

  /** A local pool of the node at `config.path`, for `content`, once it is active there. */
  const poolOnNode = async (
    poolId: string,
    config: { path: string; create?: boolean },
    content: 'images' | 'iso' = 'images',
  ): Promise<void> => {
    await api('POST', '/pools', {
      id: poolId,
      name: poolId,
      type: 'local',
      config,
      contentTypes: [content],
      nodeIds: [NODE],
    });
    await waitFor(
      async () => (await api('GET', `/pools/${poolId}`)).body.nodeStates?.[0]?.status === 'active',
      `pool ${poolId} to be active`,
      60_000,
    );
  };

  /** A local pool of the node at `config.path`, active, with the guest image downloaded into it: the image's id. */
  const guestImageInNewPool = async (poolId: string, config: { path: string; create?: boolean }): Promise<string> => {
    await poolOnNode(poolId, config);
    const image = (await api('POST', '/images/download', { catalogId: 'e2e-guest', poolId })).body;
    await waitFor(
      async () => (await api('GET', `/images/${image.id}`)).body.phase === 'ready',
      `the guest image in ${poolId}`,
      120_000,
    );
    return image.id as string;
  };

  beforeAll(async () => {
    await run('bash', [join(repoRoot, 'scripts/services.sh'), 'postgres', 'libvirt'], { timeout: 900_000 });
    requireTools({ program: 'ssh', debianPackage: 'openssh-client' });
    testDb = await createTestDatabase('pg');
    work = await mkdtemp(join(tmpdir(), 'quantix-vm-network-'));

    // The key the VM is created with; the test logs in with its private half.
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'quantix-e2e', '-f', join(work, 'id_ed25519')]);
    privateKey = join(work, 'id_ed25519');
    publicKey = (await readFile(`${privateKey}.pub`, 'utf8')).trim();

    const guest = await readFile(await testGuestImage());
    mirror = await startImageServer();
    mirror.setFile('/cloud/guest.img', guest);
    mirror.setFile('/cloud/SHA256SUMS', sha256Sums({ 'guest.img': guest }));
    const catalogFile = join(work, 'catalog.json');
    await writeFile(
      catalogFile,
      JSON.stringify([
        {
          id: 'e2e-guest',
          name: 'E2E tiny guest',
          kind: 'cloud',
          format: 'raw',
          os: {
            family: 'linux',
            distribution: 'e2e',
            version: '1',
            arch: 'x86_64',
            defaultUser: 'root',
            cloudInit: true,
          },
          requirements: { minCpu: 1, minMemoryMiB: 128, minDiskGiB: 1, firmware: 'bios' },
          sourceUrl: `${mirror.url}/cloud/guest.img`,
          checksumUrl: `${mirror.url}/cloud/SHA256SUMS`,
          checksumAlgorithm: 'sha256',
        },
      ]),
    );

    const port = await freePort();
    cp = startProcess(
      [QUANTIX, 'serve', '--host', '127.0.0.1', '--port', String(port), '--catalog', catalogFile, '--pool-root', work],
      {
        QUANTIX_DATABASE_URL: (testDb.config as { connectionString: string }).connectionString,
        QUANTIX_API_TOKEN: API_TOKEN,
        // VM records checked against libvirt every 2 s: the full pool's pause shows soon.
        QUANTIX_VM_STATE_SECONDS: '2',
        // A stop without a timeout of its own waits 2 s for the guest (this one ignores ACPI), not 60.
        QUANTIX_VM_STOP_SECONDS: '2',
      },
    );
    const server = cp;
    await waitFor(
      async () => {
        if (server.child.exitCode !== null) throw new Error(`quantix serve exited:\n${server.output.join('')}`);
        return server.output.join('').includes('"event":"listening"');
      },
      'the control plane to listen',
      60_000,
    );
    cpUrl = `http://127.0.0.1:${port}`;

    const node = await api('POST', '/nodes', { id: NODE, hostname: NODE });
    expect(node.status).toBe(201);
    daemon = startProcess(
      [
        QUANTIX_NODE,
        '--url',
        cpUrl,
        '--node-id',
        NODE,
        '--libvirt',
        'qemu:///system',
        '--virt-type',
        'qemu',
        '--allow-source',
        '127.0.0.1',
        '--hostname',
        NODE,
      ],
      { QUANTIX_NODE_TOKEN: node.body.token, QUANTIX_POOL_ROOTS: work },
    );
    await waitFor(async () => (await api('GET', `/nodes/${NODE}`)).body?.connected === true, 'the node', 60_000);

    imageId = await guestImageInNewPool('net-local', { path: join(work, 'pool'), create: true });
  }, 900_000);

  afterAll(async () => {
    const vms = cpUrl ? await api('GET', '/vms').catch(() => null) : null;
    for (const vm of (vms?.body?.vms ?? []) as { id: string }[]) {
      await api('DELETE', `/vms/${vm.id}`).catch(() => undefined);
    }
    await stopProcess(daemon);
    await stopProcess(cp);
    if (smallPool) await run('umount', ['-l', smallPool]).catch(() => undefined);
    await mirror?.close();
    await testDb?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  }, 180_000);

  it("lists the node's libvirt networks: default is NAT, active, with DHCP on its subnet", async () => {
    const listed = await api('GET', `/nodes/${NODE}/networks`);
    expect(listed.status).toBe(200);
    expect(listed.body.networks).toContainEqual(
      expect.objectContaining({ attachment: 'network', name: 'default', active: true, forward: 'nat', dhcp: true }),
    );
    // virbr0 belongs to `default`: it is offered as that network, not again as a bare bridge.
    const bridgeOfDefault = listed.body.networks.find((n: { name: string }) => n.name === 'default').bridge;
    expect(listed.body.networks.filter((n: { name: string }) => n.name === bridgeOfDefault)).toEqual([]);
    const printed = await cli('nodes', 'networks', NODE);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toMatch(/^default\s+active\s+nat\s/m);
    expect((await api('GET', '/nodes/no-such-node/networks')).body.error.code).toBe('NOT_FOUND');
  });

  it('refuses a network the node does not have before anything is made, naming what it has', async () => {
    const refused = await api('POST', '/vms', {
      name: `${VM_NAME}-x`,
      nodeId: NODE,
      imageId,
      memoryMiB: 192,
      diskGiB: 1,
      networks: [{ source: 'no-such-net' }],
    });
    expect(refused).toMatchObject({ status: 404, body: { error: { code: 'NETWORK_NOT_FOUND' } } });
    expect(refused.body.error.message).toContain('default');
    const bridge = await cli(
      'vms',
      'create',
      `${VM_NAME}-y`,
      '--node',
      NODE,
      '--image',
      imageId,
      '--network',
      'bridge:nobr0',
    );
    expect(bridge.code).toBe(1);
    expect(bridge.stderr).toContain('NETWORK_NOT_FOUND');
    expect((await api('GET', '/vms')).body.vms).toEqual([]);
    expect(await virsh('list', '--all', '--name')).not.toContain(`${VM_NAME}-`);
  });

  it('refuses a VM below what its image needs before anything is made: too little memory, the other firmware', async () => {
    // The guest's boot loader cannot load its kernel in 64 MiB: made, it would loop at `boot:` for ever.
    // No --node: the control plane has one node, where the VM would go.
    const small = await cli('vms', 'create', `${VM_NAME}-small`, '--image', imageId, '--memory', '64');
    expect(small.code).toBe(1);
    expect(small.stderr).toContain('BELOW_IMAGE_REQUIREMENTS');
    expect(small.stderr).toContain('needs at least 128 MiB of memory (asked 64)');
    const uefi = await api('POST', '/vms', { name: `${VM_NAME}-uefi`, nodeId: NODE, imageId, firmware: 'uefi' });
    expect(uefi).toMatchObject({
      status: 422,
      body: { error: { code: 'BELOW_IMAGE_REQUIREMENTS', details: { needs: { firmware: 'bios' } } } },
    });
    expect((await api('GET', '/vms')).body.vms).toEqual([]);
    expect(await virsh('list', '--all', '--name')).not.toContain(`${VM_NAME}-`);
    // What a VM of it gets when nothing is asked meets what it needs.
    const defaults = (await api('GET', `/images/${imageId}/vm-defaults`)).body;
    expect(defaults).toMatchObject({ firmware: 'bios' });
    expect(defaults.memoryMiB).toBeGreaterThanOrEqual(128);
  });

  it('boots a VM on the default network: its MAC is kept, its address is reported, and its SSH key reached the guest', async () => {
    const created = await cli(
      '--json',
      'vms',
      'create',
      VM_NAME,
      '--node',
      NODE,
      '--image',
      imageId,
      '--memory',
      '192',
      '--disk',
      '1',
      '--network',
      'default',
      '--ssh-key',
      publicKey,
    );
    expect(created.code, created.stderr).toBe(0);
    const vm = JSON.parse(created.stdout) as { id: string; state: string; nics: { mac: string; source: string }[] };
    expect(vm.state).toBe('running');
    expect(vm.nics).toEqual([{ attachment: 'network', source: 'default', model: 'virtio', mac: expect.any(String) }]);
    const mac = vm.nics[0]?.mac as string;
    expect(mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    // The domain has that very MAC on a virtio NIC on `default`.
    const xml = await virsh('dumpxml', VM_NAME);
    expect(xml).toContain(`<mac address='${mac}'/>`);
    expect(xml).toContain("<source network='default'");

    // The guest boots, asks dnsmasq for an address, and the API reports it from the lease.
    let address = '';
    await waitFor(
      async () => {
        const answer = await api('GET', `/vms/${vm.id}/addresses`);
        const lease = (
          answer.body.addresses as { mac: string; family: string; address: string; source: string }[]
        ).find((a) => a.mac === mac && a.family === 'ipv4');
        if (lease) {
          expect(lease.source).toBe('lease');
          address = lease.address;
        }
        return address !== '';
      },
      "the guest's DHCP lease",
      300_000,
    );
    expect(address).toMatch(/^192\.168\.122\.\d+$/);

    // The key given at creation is the one that opens the guest: logging in proves it arrived.
    let login = { stdout: '', stderr: '' };
    await waitFor(
      async () => {
        try {
          login = await run(
            'ssh',
            [
              '-i',
              privateKey,
              '-o',
              'BatchMode=yes',
              '-o',
              'StrictHostKeyChecking=no',
              '-o',
              'UserKnownHostsFile=/dev/null',
              '-o',
              'ConnectTimeout=5',
              `root@${address}`,
              'cat /root/.ssh/authorized_keys; hostname',
            ],
            { timeout: 30_000 },
          );
          return true;
        } catch {
          return false;
        }
      },
      `an SSH login to ${address} with the VM's key`,
      120_000,
    );
    expect(login.stdout).toContain(publicKey);
    expect(login.stdout.trim().split('\n').at(-1)).toBe(VM_NAME);

    // The CLI shows where the VM is, in the listing and in its details.
    const shown = await cli('vms', 'show', VM_NAME);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`default\\s+virtio\\s+${mac}\\s+${address.replace(/\./g, '\\.')}`));
    const listed = await cli('vms', 'list');
    expect(listed.stdout).toMatch(new RegExp(`${VM_NAME}\\s+${NODE}\\s+running\\s+${address.replace(/\./g, '\\.')}`));

    // `vms stop` on a terminal says what it waits for; this guest ignores ACPI, so the wait (the
    // control plane's QUANTIX_VM_STOP_SECONDS) runs out.
    const command = quoteArgv([process.execPath, QUANTIX, '--url', cpUrl, 'vms', 'stop', VM_NAME]);
    const onTerminal = await run('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, QUANTIX_TOKEN: API_TOKEN },
    }).catch((error: { code: number; stdout: string }) => error);
    expect(onTerminal.stdout).toContain(
      `asked ${VM_NAME}'s guest to shut down (ACPI); waiting for it to power off\r\nerror VM_DID_NOT_STOP: VM ${VM_NAME} is still running 2 s after the ACPI shutdown`,
    );
    expect((onTerminal as { code?: number }).code).toBe(1);

    // Stopped, it has no address; started again, it keeps its MAC.
    expect((await api('POST', `/vms/${vm.id}/stop`, { force: true })).body.state).toBe('stopped');
    expect((await api('GET', `/vms/${vm.id}/addresses`)).body.addresses).toEqual([]);
    expect((await api('POST', `/vms/${vm.id}/start`)).body.state).toBe('running');
    expect(await virsh('dumpxml', VM_NAME)).toContain(`<mac address='${mac}'/>`);
    expect((await api('GET', `/vms/${vm.id}`)).body.nics[0].mac).toBe(mac);
  });

  it('shows a VM paused because its pool is full, says why, and lets it run on once there is room', async () => {
    smallPool = join(work, 'small');
    await mkdir(smallPool);
    // Room for the 13 MiB guest image, the VM's overlay and seed, and a few MiB more: not for
    // the 48 MiB the guest writes.
    await run('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0755', 'quantix-full-pool', smallPool]);
    const smallImageId = await guestImageInNewPool('net-small', { path: smallPool });

    const name = `fill-disk-${process.pid}`;
    const created = await api('POST', '/vms', {
      name,
      nodeId: NODE,
      imageId: smallImageId,
      memoryMiB: 192,
      diskGiB: 1,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const vmId = created.body.id as string;
    // The guest boots (TCG: about 30 s), writes, and QEMU pauses it when the overlay cannot grow.
    await waitFor(
      async () => (await api('GET', `/vms/${vmId}`)).body.state === 'paused',
      'the VM to be paused on its full pool',
      300_000,
    );
    expect((await virsh('domstate', '--reason', name)).trim()).toBe('paused (I/O error)');
    const paused = (await api('GET', `/vms/${vmId}`)).body;
    expect(paused.error).toContain('a disk could not be written (is its pool full?)');

    // Room is made; starting the VM lets the guest run on, and its write ends.
    await run('mount', ['-o', 'remount,size=256m', smallPool]);
    const started = await api('POST', `/vms/${vmId}/start`);
    expect(started).toMatchObject({ status: 200, body: { state: 'running', error: null } });
    const serialLog = `/var/log/libvirt/qemu/${name}-serial0.log`;
    await waitFor(
      async () =>
        (await readFile(serialLog, 'utf8').catch(() => '')).includes('quantix-guest: wrote 48 MiB to its disk'),
      "the guest's write to end",
      120_000,
    );
    expect((await api('GET', `/vms/${vmId}`)).body).toMatchObject({ state: 'running', error: null });
    expect((await api('DELETE', `/vms/${vmId}`)).status).toBe(204);
  });

  it('ejects the installer ISO from a running VM made from it, inserts it again and ejects it; a data disc makes no VM but goes into the drive: the VM then finds nothing to boot, and the ISO can be deleted', async () => {
    // An ISO pool with a bootable ISO in it (the test guest is a hybrid ISO), found by a rescan.
    const isoDir = join(work, 'isos');
    await poolOnNode('net-isos', { path: isoDir, create: true }, 'iso');
    await writeFile(join(isoDir, 'installer.iso'), await readFile(await testGuestImage()));
    expect((await api('POST', '/images/rescan', { poolId: 'net-isos' })).status).toBe(200);
    let isoId = '';
    await waitFor(
      async () => {
        const [iso] = (await api('GET', '/images?poolId=net-isos&kind=iso')).body.images as { id: string }[];
        isoId = iso?.id ?? '';
        return isoId !== '';
      },
      'the ISO to be listed',
      60_000,
    );

    const name = `${VM_NAME}-inst`;
    const created = await api('POST', '/vms', { name, nodeId: NODE, imageId: isoId, memoryMiB: 192, diskGiB: 1 });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const vmId = created.body.id as string;
    expect(created.body).toMatchObject({ bootImageId: isoId, cdroms: [{ imageId: isoId, relPath: 'installer.iso' }] });
    // It boots from its CD-ROM: the guest on the ISO runs (no seed: an ISO VM gets none).
    const serialLog = `/var/log/libvirt/qemu/${name}-serial0.log`;
    const serial = () => readFile(serialLog, 'utf8').catch(() => '');
    await waitFor(
      async () => (await serial()).includes('quantix-guest: no NoCloud seed found'),
      'the ISO to boot',
      180_000,
    );
    // While it is in the drive, the ISO cannot be deleted; the refusal says how to free it.
    const refused = await api('DELETE', `/images/${isoId}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain(
      'eject it from their CD-ROM drives (`quantix vms eject`, POST /vms/{id}/eject)',
    );

    const ejected = await cli('vms', 'eject', name);
    expect(ejected, ejected.stderr).toMatchObject({ code: 0, stdout: `ejected installer.iso from VM ${name}\n` });
    expect((await api('GET', `/vms/${vmId}`)).body).toMatchObject({ state: 'running', cdroms: [], bootImageId: null });
    // The drive stays, empty, in the running domain and in its definition.
    expect(await virsh('domblklist', name)).toMatch(/^\s*sd[a-z]+\s+-\s*$/m);
    expect(await virsh('dumpxml', '--inactive', name)).not.toContain('installer.iso');
    // Nothing left to eject: said so, no error.
    expect((await cli('vms', 'eject', name)).stdout).toBe(`VM ${name} has no ISO in its CD-ROM drives\n`);

    // Put back into the empty drive (a rescue boot, say): in use again, until ejected again.
    const inserted = await cli('vms', 'insert', name, isoId);
    expect(inserted, inserted.stderr).toMatchObject({ code: 0, stdout: `inserted installer.iso into VM ${name}\n` });
    expect((await api('GET', `/vms/${vmId}`)).body.cdroms).toEqual([
      { imageId: isoId, poolId: 'net-isos', relPath: 'installer.iso', path: join(isoDir, 'installer.iso') },
    ]);
    expect(await virsh('domblklist', name)).toContain(join(isoDir, 'installer.iso'));
    expect((await cli('vms', 'insert', name, isoId)).stdout).toBe(
      `VM ${name} has installer.iso in its CD-ROM drive already\n`,
    );
    expect((await api('DELETE', `/images/${isoId}`)).status).toBe(409);
    expect((await cli('vms', 'eject', name)).code).toBe(0);
    expect(await virsh('dumpxml', '--inactive', name)).not.toContain('installer.iso');

    // A data disc (drivers: no boot record) is no image to make a VM from, but goes into the drive.
    await buildIso(join(isoDir, 'drivers.iso'), { volumeId: 'virtio-win-0.1.262', boot: null });
    expect((await api('POST', '/images/rescan', { poolId: 'net-isos' })).status).toBe(200);
    let driversId = '';
    await waitFor(
      async () => {
        const found = (await api('GET', '/images?poolId=net-isos&kind=iso')).body.images as {
          id: string;
          location: { relPath: string };
        }[];
        driversId = found.find((image) => image.location.relPath === 'drivers.iso')?.id ?? '';
        return driversId !== '';
      },
      'the data disc to be listed',
      60_000,
    );
    const notBootable = await api('POST', '/vms', {
      name: `${name}-drv`,
      nodeId: NODE,
      imageId: driversId,
      memoryMiB: 192,
    });
    expect(notBootable).toMatchObject({ status: 422, body: { error: { code: 'IMAGE_NOT_BOOTABLE' } } });
    const vmNames = ((await api('GET', '/vms')).body.vms as { name: string }[]).map((vm) => vm.name);
    expect(vmNames).toContain(name);
    expect(vmNames).not.toContain(`${name}-drv`);
    const drivers = await cli('vms', 'insert', name, driversId);
    expect(drivers, drivers.stderr).toMatchObject({ code: 0, stdout: `inserted drivers.iso into VM ${name}\n` });

    // Started again, it finds nothing to boot on the data disc and its blank disk: the installer is out.
    expect((await api('POST', `/vms/${vmId}/stop`, { force: true })).body.state).toBe('stopped');
    expect((await api('POST', `/vms/${vmId}/start`)).body.state).toBe('running');
    await waitFor(
      async () => (await serial()).includes('No bootable device'),
      'the boot from the disk to fail',
      120_000,
    );
    expect(await serial()).not.toContain('quantix-guest');

    // Nothing uses the ISO now: it goes, its file too.
    expect((await api('DELETE', `/images/${isoId}`)).status).toBe(204);
    await expect(readFile(join(isoDir, 'installer.iso'))).rejects.toThrow(/ENOENT/);
    expect((await api('DELETE', `/vms/${vmId}`)).status).toBe(204);
  });

  it('gives a stopped VM more vCPUs and memory, which it runs with once started; refused while it runs or beyond the node', async () => {
    const name = `${VM_NAME}-size`;
    const created = await api('POST', '/vms', { name, nodeId: NODE, imageId, cpu: 1, memoryMiB: 128, diskGiB: 1 });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const vmId = created.body.id as string;
    // What libvirt says of the domain (the running one with --live, else its definition).
    const dominfo = async () => {
      const text = await virsh('dominfo', name);
      const field = (label: string) => Number(new RegExp(`^${label}:\\s+(\\d+)`, 'm').exec(text)?.[1]);
      return { cpus: field('CPU\\(s\\)'), maxKiB: field('Max memory') };
    };

    const running = await api('PATCH', `/vms/${vmId}`, { cpu: 2 });
    expect(running.status).toBe(409);
    expect(running.body.error).toMatchObject({ code: 'INVALID_STATE' });
    expect(running.body.error.message).toMatch(/stop it before/);
    expect(await dominfo()).toEqual({ cpus: 1, maxKiB: 128 * 1024 });

    expect((await api('POST', `/vms/${vmId}/stop`, { force: true })).body.state).toBe('stopped');
    const resized = await cli('vms', 'resize', name, '--cpu', '2', '--memory', '256');
    expect(resized, resized.stderr).toMatchObject({
      code: 0,
      stdout: `VM ${name}: 1 → 2 vCPU, 128 → 256 MiB, from its next start\n`,
    });
    expect(await dominfo()).toEqual({ cpus: 2, maxKiB: 256 * 1024 });
    expect((await api('GET', `/vms/${vmId}`)).body).toMatchObject({ cpu: 2, memoryMiB: 256, state: 'stopped' });

    // More than the node has: refused before the node is asked; nothing changes.
    const host = (await api('GET', `/nodes/${NODE}`)).body.capabilities.host as { memoryMiB: number };
    const tooBig = await api('PATCH', `/vms/${vmId}`, { memoryMiB: host.memoryMiB + 1024 });
    expect(tooBig.status).toBe(422);
    expect(tooBig.body.error.code).toBe('INSUFFICIENT_CAPACITY');
    // Less than its image needs: refused as a creation is.
    const tooSmall = await cli('vms', 'resize', name, '--memory', '64');
    expect(tooSmall.code).toBe(1);
    expect(tooSmall.stderr).toContain('BELOW_IMAGE_REQUIREMENTS');
    expect((await api('PATCH', `/vms/${vmId}`, {})).status).toBe(400);
    expect((await cli('vms', 'resize', name)).code).toBe(2);
    // Only an ISO goes into a CD-ROM drive.
    const notIso = await api('POST', `/vms/${vmId}/insert`, { imageId });
    expect(notIso.status).toBe(400);
    expect(notIso.body.error.message).toMatch(/only an ISO goes into a CD-ROM drive/);
    expect(await dominfo()).toEqual({ cpus: 2, maxKiB: 256 * 1024 });

    // Started, it runs with what it was given.
    expect((await api('POST', `/vms/${vmId}/start`)).body.state).toBe('running');
    expect((await virsh('vcpucount', '--domain', name, '--live', '--active')).trim()).toBe('2');
    expect(await dominfo()).toEqual({ cpus: 2, maxKiB: 256 * 1024 });
    expect((await api('DELETE', `/vms/${vmId}`)).status).toBe(204);
  });
});
