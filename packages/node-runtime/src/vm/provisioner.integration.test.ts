import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode } from '@quantix/core';
import { makeVmdkDescriptorNaming } from '@quantix/images-cloud/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LIBVIRT_URI,
  rejection,
  removeDomains,
  requireServices,
  runPrefix,
  testSshRunnerOptions,
} from '../__fixtures__/services.js';
import { NodeRuntimeErrorCode } from '../errors.js';
import { parseDomainXml } from '../libvirt/domain-xml.js';
import { LibvirtHypervisor } from '../libvirt/hypervisor.js';
import { SshCommandRunner } from '../ssh/runner.js';
import { VmProvisioner } from './provisioner.js';

// Real libvirtd through the real test sshd, real qemu-img and xorriso. The "cloud image" is a
// small empty qcow2 and the ISO is made with xorriso: no guest OS runs, and "running" is the
// libvirt domain state (KVM or TCG).

const exec = promisify(execFile);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPPQNAluafk1kgslOYLx6UGtMCWRPwyyCISxHyzri6ti ada@laptop';

/** Where a VM's files go: a directory of its own. */
const cloudFiles = (vmDir: string) => ({ diskPath: join(vmDir, 'disk0.qcow2'), seedPath: join(vmDir, 'seed.iso') });
const isoFiles = (vmDir: string) => ({ diskPath: join(vmDir, 'disk0.qcow2') });

function fingerprint(path: string): { sha256: string; mtimeMs: number; size: number } {
  const stat = statSync(path);
  return {
    sha256: createHash('sha256').update(readFileSync(path)).digest('hex'),
    mtimeMs: stat.mtimeMs,
    size: stat.size,
  };
}

/** What libvirt says each drive of a domain holds: live, or with `--inactive` in its definition. */
async function drivesOf(name: string, ...scope: string[]): Promise<string> {
  return (await exec('virsh', ['--connect', LIBVIRT_URI, 'domblklist', '--domain', name, ...scope])).stdout;
}

/** The volume id of an ISO 9660 image: 32 bytes at offset 40 of the primary volume descriptor. */
function volumeId(iso: string): string {
  return readFileSync(iso)
    .subarray(32768 + 40, 32768 + 72)
    .toString('latin1')
    .trim();
}

describe('VmProvisioner over SSH on qemu:///system', () => {
  const prefix = runPrefix('vm');
  let ssh: SshCommandRunner;
  let hypervisor: LibvirtHypervisor;
  let provisioner: VmProvisioner;
  let dir: string;
  let base: string;
  let iso: string;

  beforeAll(async () => {
    await requireServices('libvirt', 'sshd');
    dir = await mkdtemp(join(tmpdir(), 'quantix-vm-'));
    ssh = new SshCommandRunner(testSshRunnerOptions());
    hypervisor = new LibvirtHypervisor({ runner: ssh, uri: LIBVIRT_URI });
    provisioner = new VmProvisioner({ runner: ssh, hypervisor });
    // A "ready base image" in an images pool, and an installer ISO in an ISO pool.
    await mkdir(join(dir, 'images'));
    await mkdir(join(dir, 'vms'));
    await mkdir(join(dir, 'iso', 'content'), { recursive: true });
    base = join(dir, 'images', 'tiny-cloud.qcow2');
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    await exec('sh', ['-c', 'echo "installer" > "$1/README"', 'sh', join(dir, 'iso', 'content')]);
    iso = join(dir, 'iso', 'installer.iso');
    await exec('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'QUANTIX_INSTALLER',
      '-J',
      '-R',
      '-o',
      iso,
      join(dir, 'iso', 'content'),
    ]);
  });

  afterAll(async () => {
    // Whatever a failed test left behind: every domain of this run goes.
    await removeDomains(prefix);
    await ssh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a VM from a cloud image (overlay + NoCloud seed) → running; stop; delete leaves the base image untouched', async () => {
    const name = `${prefix}-cloud`;
    const vmDir = join(dir, 'vms', name);
    const before = fingerprint(base);
    const created = await provisioner.createFromCloudImage({
      name,
      vmId: 'vm-0001',
      memoryMiB: 64,
      baseImagePath: base,
      ...cloudFiles(vmDir),
      diskSizeGiB: 1,
      cloudInit: { hostname: 'web-01', user: { name: 'ada', sshAuthorizedKeys: [KEY] } },
    });
    expect(created.domain).toMatchObject({ name, state: 'running' });
    expect(await hypervisor.state({ name })).toBe('running');
    const overlay = join(vmDir, 'disk0.qcow2');
    const seed = join(vmDir, 'seed.iso');
    expect(created.ownedFiles).toEqual([overlay, seed]);
    expect(created.ownedDirectories).toEqual([vmDir]);

    // The overlay is backed by the base image and has the asked-for size.
    const info = JSON.parse((await exec('qemu-img', ['info', '-U', '--output=json', overlay])).stdout);
    expect(info).toMatchObject({
      format: 'qcow2',
      'virtual-size': 1024 ** 3,
      'backing-filename': base,
      'backing-filename-format': 'qcow2',
    });
    // The seed is a NoCloud volume carrying the hostname, the user and the key.
    expect(volumeId(seed)).toBe('cidata');
    const extracted = join(dir, `${name}-seed`);
    await exec('xorriso', ['-osirrox', 'on', '-indev', seed, '-extract', '/', extracted]);
    const userData = await readFile(join(extracted, 'user-data'), 'utf8');
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    expect(JSON.parse(userData.slice(14))).toMatchObject({
      hostname: 'web-01',
      users: ['default', { name: 'ada', ssh_authorized_keys: [KEY] }],
    });
    expect(JSON.parse(await readFile(join(extracted, 'meta-data'), 'utf8'))).toEqual({
      'instance-id': 'vm-0001',
      'local-hostname': 'web-01',
    });
    // The domain boots the overlay, with the seed on a CD-ROM and a second drive empty.
    const xml = parseDomainXml(await hypervisor.dumpXml({ name }));
    expect(xml.disks.map((d) => [d.device, d.path])).toEqual([
      ['disk', overlay],
      ['cdrom', seed],
      ['cdrom', null],
    ]);
    expect(xml.vmId).toBe('vm-0001');
    // An ISO goes into the empty drive, live and in the definition; the seed stays.
    const empty = xml.disks[2]?.target as string;
    expect(await provisioner.insertCdrom({ name, path: iso })).toEqual({ target: empty });
    for (const scope of [[], ['--inactive']]) {
      const held = await drivesOf(name, ...scope);
      expect(held, scope.join('')).toMatch(new RegExp(`^\\s*${empty}\\s+${iso}\\s*$`, 'm'));
      expect(held, scope.join('')).toContain(seed);
    }

    await hypervisor.destroy({ name });
    expect(await hypervisor.state({ name })).toBe('shutoff');

    const deleted = await provisioner.deleteVm({ name });
    expect(deleted.removedFiles).toEqual([overlay, seed]);
    expect(existsSync(iso)).toBe(true); // in the drive, but not the VM's own
    expect((await rejection(hypervisor.state({ name }))).code).toBe(ErrorCode.NOT_FOUND);
    expect(existsSync(overlay)).toBe(false);
    expect(existsSync(seed)).toBe(false);
    expect(existsSync(vmDir)).toBe(false);
    expect(fingerprint(base)).toEqual(before);
  });

  it('creates a VM from an ISO → running with the CD-ROM attached and booting first; delete keeps the ISO', async () => {
    const name = `${prefix}-iso`;
    const vmDir = join(dir, 'vms', name);
    const before = fingerprint(iso);
    const created = await provisioner.createFromIso({
      name,
      memoryMiB: 64,
      isoPath: iso,
      ...isoFiles(vmDir),
      diskSizeGiB: 2,
    });
    expect(created.domain.state).toBe('running');
    const xml = await hypervisor.dumpXml({ name });
    const info = parseDomainXml(xml);
    expect(info.disks).toEqual([
      expect.objectContaining({ device: 'disk', path: join(vmDir, 'disk0.qcow2'), readOnly: false }),
      expect.objectContaining({ device: 'cdrom', path: iso, readOnly: true }),
    ]);
    // The CD-ROM boots first.
    expect(xml).toMatch(/<source file=['"][^'"]*installer\.iso['"][\s\S]*?<boot order=['"]1['"]/);
    const disk = JSON.parse(
      (await exec('qemu-img', ['info', '-U', '--output=json', join(vmDir, 'disk0.qcow2')])).stdout,
    );
    expect(disk).toMatchObject({ format: 'qcow2', 'virtual-size': 2 * 1024 ** 3 });
    expect(disk['backing-filename']).toBeUndefined();

    // Deleting a running VM stops it first; what it wrote on its serial port goes with it.
    const serialLog = info.consoles.serialLog as string;
    expect(existsSync(serialLog)).toBe(true);
    await provisioner.deleteVm({ name });
    expect((await rejection(hypervisor.state({ name }))).code).toBe(ErrorCode.NOT_FOUND);
    expect(existsSync(vmDir)).toBe(false);
    expect(existsSync(serialLog)).toBe(false);
    expect(fingerprint(iso)).toEqual(before);
  });

  it('swaps the ISO of a running VM: ejected, then another put into its empty drive, live and in its definition', async () => {
    const name = `${prefix}-swap`;
    const drivers = join(dir, 'iso', 'drivers.iso');
    await writeFile(drivers, await readFile(iso));
    await provisioner.createFromIso({
      name,
      memoryMiB: 64,
      isoPath: iso,
      ...isoFiles(join(dir, 'vms', name)),
      diskSizeGiB: 1,
    });
    // The drive holds the installer: that one again is no change; another has no empty drive.
    expect(await provisioner.insertCdrom({ name, path: iso })).toEqual({ target: 'sda' });
    const full = await rejection(provisioner.insertCdrom({ name, path: drivers }));
    expect(full.code).toBe(NodeRuntimeErrorCode.INVALID_STATE);
    expect(full.message).toBe(`VM '${name}' has no empty CD-ROM drive: sda holds ${iso}`);

    expect(await provisioner.ejectCdroms({ name, paths: [iso] })).toEqual({ ejected: ['sda'] });
    expect(await provisioner.insertCdrom({ name, path: drivers })).toEqual({ target: 'sda' });
    expect(await drivesOf(name)).toMatch(new RegExp(`^\\s*sda\\s+${drivers}\\s*$`, 'm'));
    expect(await drivesOf(name, '--inactive')).toMatch(new RegExp(`^\\s*sda\\s+${drivers}\\s*$`, 'm'));
    expect(await hypervisor.state({ name })).toBe('running');

    await provisioner.deleteVm({ name });
    // Neither ISO was the VM's own: both stay.
    expect(existsSync(drivers) && existsSync(iso)).toBe(true);
    await rm(drivers);
  });

  it('creates a UEFI VM → running, and delete removes its NVRAM too', async () => {
    const name = `${prefix}-uefi`;
    // OVMF trips a KVM emulation failure under nested virtualisation on these machines (the
    // domain pauses at once), so this one runs on TCG, which executes OVMF fine.
    const tcg = new VmProvisioner({ runner: ssh, hypervisor, virtType: 'qemu' });
    await tcg.createFromCloudImage({
      name,
      memoryMiB: 128,
      firmware: 'uefi',
      baseImagePath: base,
      ...cloudFiles(join(dir, 'vms', name)),
      cloudInit: { hostname: 'uefi-box' },
    });
    expect(await hypervisor.state({ name })).toBe('running');
    const xml = await hypervisor.dumpXml({ name });
    expect(parseDomainXml(xml).firmware).toBe('uefi');
    const nvram = /<nvram[^>]*>([^<]+)<\/nvram>/.exec(xml)?.[1];
    expect(nvram && existsSync(nvram)).toBe(true);
    await tcg.deleteVm({ name });
    expect(existsSync(nvram as string)).toBe(false);
  });

  it('keeps files it did not make: a VM directory that existed stays, with what else is in it', async () => {
    const name = `${prefix}-shared-dir`;
    const vmDir = join(dir, 'shared');
    await mkdir(vmDir);
    await exec('sh', ['-c', 'echo keep > "$1/notes.txt"', 'sh', vmDir]);
    await provisioner.createFromIso({
      name,
      memoryMiB: 64,
      isoPath: iso,
      ...isoFiles(vmDir),
      diskSizeGiB: 1,
      start: false,
    });
    expect(await hypervisor.state({ name })).toBe('shutoff');
    await provisioner.deleteVm({ name });
    expect(existsSync(join(vmDir, 'disk0.qcow2'))).toBe(false);
    expect(readFileSync(join(vmDir, 'notes.txt'), 'utf8')).toBe('keep\n');
  });

  it('passes a VM directory full of shell metacharacters literally and runs none of it', async () => {
    const name = `${prefix}-odd`;
    const marker = join(dir, 'ran');
    const vmDir = join(dir, `odd 'dir' "x" $(touch ${marker.replaceAll('/', '_')}) \`touch y\` ; touch z`);
    const created = await provisioner.createFromCloudImage({
      name,
      memoryMiB: 64,
      baseImagePath: base,
      ...cloudFiles(vmDir),
      cloudInit: { hostname: 'odd' },
    });
    expect(created.domain.state).toBe('running');
    expect(existsSync(join(vmDir, 'seed.iso'))).toBe(true);
    await provisioner.deleteVm({ name });
    expect(existsSync(vmDir)).toBe(false);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(dir, 'z'))).toBe(false);
  });

  it('refuses bad requests before making anything', async () => {
    const vmDir = join(dir, 'vms', 'refused');
    const attempt = (patch: Record<string, unknown>) =>
      rejection(
        provisioner.createFromCloudImage({
          name: `${prefix}-refused`,
          memoryMiB: 64,
          baseImagePath: base,
          ...cloudFiles(vmDir),
          cloudInit: { hostname: 'h' },
          ...patch,
        }),
      );
    expect((await attempt({ baseImagePath: join(dir, 'images', 'missing.qcow2') })).code).toBe(ErrorCode.NOT_FOUND);
    expect((await attempt({ diskSizeGiB: 0 })).code).toBe(ErrorCode.INVALID_INPUT);
    expect((await attempt({ name: 'web; reboot' })).code).toBe(ErrorCode.INVALID_INPUT);
    expect((await attempt({ diskPath: 'relative/disk.qcow2' })).code).toBe(ErrorCode.INVALID_INPUT);
    expect((await attempt({ seedPath: `${dir}/../../etc/seed.iso` })).code).toBe(ErrorCode.INVALID_INPUT);
    expect(existsSync(vmDir)).toBe(false);

    // A name already taken: nothing is made, and the existing VM is left alone.
    const name = `${prefix}-taken`;
    await provisioner.createFromIso({
      name,
      memoryMiB: 64,
      isoPath: iso,
      ...isoFiles(join(dir, 'vms', name)),
      diskSizeGiB: 1,
      start: false,
    });
    expect((await attempt({ name })).code).toBe(ErrorCode.ALREADY_EXISTS);
    expect(existsSync(vmDir)).toBe(false);
    await provisioner.deleteVm({ name });

    // A file the VM would own that exists already: refused and left as it was; the other file's
    // directory, which did not exist, is not made.
    const occupied = join(dir, 'vms', `${prefix}-occupied`);
    await mkdir(occupied, { recursive: true });
    const seedPath = join(occupied, 'seed.iso');
    await writeFile(seedPath, 'not ours');
    const diskPath = join(dir, 'vms', `${prefix}-occupied-disks`, 'disk0.qcow2');
    expect(await attempt({ diskPath, seedPath })).toMatchObject({
      code: ErrorCode.ALREADY_EXISTS,
      details: { path: seedPath },
    });
    expect(await readFile(seedPath, 'utf8')).toBe('not ours');
    expect(existsSync(dirname(diskPath))).toBe(false);
  });

  it('refuses a base image that is no disk of its own: a backing file, an external data file, a VMDK descriptor, a file cut short', async () => {
    // Files a pool could hold, found by a scan: none of them may become a VM's disk.
    const images = join(dir, 'images');
    const secret = join(dir, 'host-secret.raw');
    await exec('sh', ['-c', 'printf "root:secret-hash" > "$1"', 'sh', secret]);
    const backed = join(images, 'backed.qcow2');
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, backed, '64M']);
    const dataFile = join(images, 'data-file.qcow2');
    await exec('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      `data_file=${secret},data_file_raw=on`,
      dataFile,
      '1M',
    ]);
    // A qcow2 with 8 MiB written, cut at 2 MiB: what a scan finds while the file is still being copied.
    const whole = join(dir, 'whole.qcow2');
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', whole, '64M']);
    await exec('qemu-io', ['-c', 'write -P 0xab 0 8M', whole]);
    const cut = join(images, 'cut-short.qcow2');
    await exec('sh', ['-c', 'head -c 2097152 "$1" > "$2"', 'sh', whole, cut]);

    const name = `${prefix}-unsafe-base`;
    const vmDir = join(dir, 'vms', name);
    const attempt = (baseImagePath: string) =>
      rejection(
        provisioner.createFromCloudImage({
          name,
          memoryMiB: 64,
          baseImagePath,
          ...cloudFiles(vmDir),
          cloudInit: { hostname: 'h' },
        }),
      );
    expect(await attempt(backed)).toMatchObject({
      code: ErrorCode.INVALID_INPUT,
      message: expect.stringContaining(`names a backing file (${secret})`),
      details: { reason: 'backing-file', file: secret },
    });
    expect(await attempt(dataFile)).toMatchObject({
      code: ErrorCode.INVALID_INPUT,
      details: { reason: 'data-file', file: secret },
    });
    // A VMDK descriptor (named .qcow2, as a scan takes it) whose extent is the secret: refused
    // from its header, before qemu-img (which would open the secret as the disk's data) runs.
    const descriptor = join(images, 'descriptor.qcow2');
    await makeVmdkDescriptorNaming(descriptor, secret);
    expect(await attempt(descriptor)).toMatchObject({
      code: ErrorCode.INVALID_INPUT,
      message: expect.stringContaining('is a VMDK descriptor (monolithicFlat) that names other files'),
      details: { reason: 'vmdk-descriptor', createType: 'monolithicFlat' },
    });
    const damaged = await attempt(cut);
    expect(damaged).toMatchObject({ code: ErrorCode.INVALID_INPUT, details: { reason: 'damaged' } });
    expect(damaged.message).toMatch(/damaged or incomplete \(qemu-img check: [1-9]\d* corruptions/);
    // Nothing was made for any of them, and the whole file is a base like any other.
    expect(existsSync(vmDir)).toBe(false);
    expect((await rejection(hypervisor.state({ name }))).code).toBe(ErrorCode.NOT_FOUND);
    await exec('cp', [whole, cut]);
    await provisioner.createFromCloudImage({
      name,
      memoryMiB: 64,
      baseImagePath: cut,
      ...cloudFiles(vmDir),
      cloudInit: { hostname: 'h' },
      start: false,
    });
    await provisioner.deleteVm({ name });
  });

  it('removes what it made when a creation fails half-way', async () => {
    const name = `${prefix}-halfway`;
    const vmDir = join(dir, 'vms', name);
    // Defined fine, but the network does not exist, so the start fails.
    const error = await rejection(
      provisioner.createFromCloudImage({
        name,
        memoryMiB: 64,
        baseImagePath: base,
        ...cloudFiles(vmDir),
        networks: [{ kind: 'network', network: `${prefix}-no-such-net` }],
        cloudInit: { hostname: 'h' },
      }),
    );
    expect(error.code).toBe(NodeRuntimeErrorCode.HYPERVISOR_ERROR);
    expect((await rejection(hypervisor.state({ name }))).code).toBe(ErrorCode.NOT_FOUND);
    expect(existsSync(vmDir)).toBe(false);
  });
});
