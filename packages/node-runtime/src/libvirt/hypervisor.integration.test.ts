import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CommandRunner, ErrorCode, LocalCommandRunner, type RunCommandOptions } from '@quantix/core';
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
import { SshCommandRunner } from '../ssh/runner.js';
import { buildDomainXml, parseDomainXml } from './domain-xml.js';
import { LibvirtHypervisor } from './hypervisor.js';

// Real libvirtd (QEMU driver, KVM or TCG) reached through the real test sshd; domains are tiny
// (64 MiB, an empty qcow2, no OS): "running" is libvirt's domain state.

const exec = promisify(execFile);

/** A real runner that also records what it was asked to run (it only delegates). */
class RecordingRunner implements CommandRunner {
  readonly calls: string[][] = [];
  constructor(private readonly inner: CommandRunner) {}
  get target() {
    return this.inner.target;
  }
  run(options: RunCommandOptions) {
    this.calls.push([...options.argv]);
    return this.inner.run(options);
  }
  close() {
    return this.inner.close();
  }
}

describe('LibvirtHypervisor over SSH on qemu:///system', () => {
  const prefix = runPrefix('hv');
  let ssh: SshCommandRunner;
  let hypervisor: LibvirtHypervisor;
  let dir: string;
  let virtType: 'kvm' | 'qemu';

  const tinyDomain = async (name: string, extra: { uuid?: string } = {}) => {
    const disk = join(dir, `${name}.qcow2`);
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
    return {
      disk,
      xml: buildDomainXml({
        name,
        memoryMiB: 64,
        vcpus: 1,
        virtType,
        disks: [{ path: disk }],
        cdroms: [{ path: null }],
        metadata: { ownedFiles: [disk] },
        ...extra,
      }),
    };
  };

  beforeAll(async () => {
    await requireServices('libvirt', 'sshd');
    dir = await mkdtemp(join(tmpdir(), 'quantix-hv-'));
    ssh = new SshCommandRunner(testSshRunnerOptions());
    hypervisor = new LibvirtHypervisor({ runner: ssh, uri: LIBVIRT_URI });
    virtType = await hypervisor.virtType();
  });

  afterAll(async () => {
    // Whatever a failed test left behind: every domain of this run goes.
    await removeDomains(prefix);
    await ssh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('has libvirt accept every golden domain XML against its schema', async () => {
    const fixtures = join(import.meta.dirname, '__fixtures__');
    const local = new LocalCommandRunner();
    for (const file of readdirSync(fixtures).filter((f) => f.endsWith('.xml'))) {
      // test:///default parses and validates a definition without touching real domains.
      const result = await local.run({
        argv: ['virsh', '-c', 'test:///default', 'define', '--validate', join(fixtures, file)],
      });
      expect(result.stdout, file).toContain('defined from');
    }
  });

  it("lists the host's libvirt networks (default: NAT, DHCP) and its bridges, and a domain's NIC keeps its MAC", async () => {
    const networks = await hypervisor.networks();
    const nat = networks.find((n) => n.attachment === 'network' && n.name === 'default');
    expect(nat).toMatchObject({ active: true, forward: 'nat', dhcp: true });
    expect(nat?.addresses[0]).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    // Its bridge is offered as the network, never again as a bare bridge.
    expect(networks.filter((n) => n.attachment === 'bridge' && n.name === nat?.bridge)).toEqual([]);

    const name = `${prefix}-nic`;
    const disk = join(dir, `${name}.qcow2`);
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
    const mac = '52:54:00:5a:0b:01';
    await hypervisor.define({
      xml: buildDomainXml({
        name,
        memoryMiB: 64,
        vcpus: 1,
        virtType,
        disks: [{ path: disk }],
        networks: [{ kind: 'network', network: 'default', mac }],
        metadata: { ownedFiles: [disk] },
      }),
    });
    // Stopped: no addresses, and no virsh call that would fail on an inactive domain.
    expect(await hypervisor.interfaceAddresses({ name })).toEqual([]);
    await hypervisor.start({ name });
    expect(parseDomainXml(await hypervisor.dumpXml({ name })).interfaces).toEqual([
      { type: 'network', source: 'default', mac, model: 'virtio' },
    ]);
    // Running, with no OS to ask for a lease and no guest agent: none yet, and no failure.
    expect(await hypervisor.interfaceAddresses({ name })).toEqual([]);
    await hypervisor.destroy({ name });
    await hypervisor.undefine({ name, removeStorage: true });
  });

  it('defines, lists, starts, changes media, stops, edits disks and undefines a domain with its storage', async () => {
    const name = `${prefix}-life`;
    const { xml, disk } = await tinyDomain(name);
    const defined = await hypervisor.define({ xml });
    expect(defined).toMatchObject({ name, state: 'shutoff' });
    expect(defined.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await hypervisor.list()).find((d) => d.name === name)).toEqual(defined);

    await hypervisor.start({ name });
    expect(await hypervisor.state({ name })).toBe('running');
    expect((await hypervisor.list()).find((d) => d.name === name)?.state).toBe('running');
    expect((await rejection(hypervisor.start({ name }))).code).toBe(NodeRuntimeErrorCode.INVALID_STATE);
    // An ACPI reboot is a request to the guest: the domain is still running right after.
    await hypervisor.reboot({ name });
    expect(await hypervisor.state({ name })).toBe('running');

    // CD-ROM media change on the running domain, live and in its definition.
    const iso = join(dir, 'media.iso');
    await exec('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'MEDIA', '-o', iso, dir]);
    await hypervisor.insertMedia({ name, target: 'sda', sourcePath: iso });
    const sda = async () => parseDomainXml(await hypervisor.dumpXml({ name })).disks.find((d) => d.target === 'sda');
    expect(await sda()).toMatchObject({ device: 'cdrom', path: iso });
    await hypervisor.ejectMedia({ name, target: 'sda' });
    expect((await sda())?.path).toBeNull();

    await hypervisor.destroy({ name });
    expect(await hypervisor.state({ name })).toBe('shutoff');
    expect((await rejection(hypervisor.destroy({ name }))).code).toBe(NodeRuntimeErrorCode.INVALID_STATE);
    expect((await rejection(hypervisor.shutdown({ name }))).code).toBe(NodeRuntimeErrorCode.INVALID_STATE);
    expect((await rejection(hypervisor.reboot({ name }))).code).toBe(NodeRuntimeErrorCode.INVALID_STATE);

    // Disks are attached and detached in the definition while the domain is stopped.
    const extra = join(dir, `${name}-extra.qcow2`);
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', extra, '16M']);
    await hypervisor.attachDisk({ name, sourcePath: extra, target: 'vdb', format: 'qcow2' });
    const targets = async () =>
      parseDomainXml(await hypervisor.dumpXml({ name })).disks.map((d) => `${d.target}:${d.path}`);
    expect(await targets()).toContain(`vdb:${extra}`);
    await hypervisor.detachDisk({ name, target: 'vdb' });
    expect(await targets()).not.toContain(`vdb:${extra}`);

    await hypervisor.undefine({ name, removeStorage: true });
    expect((await rejection(hypervisor.state({ name }))).code).toBe(ErrorCode.NOT_FOUND);
    expect(existsSync(disk)).toBe(false);
    // Only what the domain owned went: the detached disk and the ISO stay.
    expect(existsSync(extra)).toBe(true);
    expect(existsSync(iso)).toBe(true);
  });

  it('refuses to remove the storage of a running domain', async () => {
    const name = `${prefix}-busy`;
    const { xml, disk } = await tinyDomain(name);
    await hypervisor.define({ xml });
    await hypervisor.start({ name });
    const busy = await rejection(hypervisor.undefine({ name, removeStorage: true }));
    expect(busy.code).toBe(NodeRuntimeErrorCode.INVALID_STATE);
    expect(busy.message).toBe(`VM '${name}' is running; stop it before removing it with its storage`);
    expect(existsSync(disk)).toBe(true);
    await hypervisor.destroy({ name });
    await hypervisor.undefine({ name, removeStorage: true });
    expect(existsSync(disk)).toBe(false);
  });

  it('sets a stopped domain’s vCPUs and memory, growing and shrinking, and refuses while it runs', async () => {
    const name = `${prefix}-resize`;
    const { xml } = await tinyDomain(name);
    await hypervisor.define({ xml });
    // What libvirt itself says of the definition, not Quantix's reading of its XML.
    const dominfo = async () => {
      const { stdout } = await exec('virsh', ['--connect', LIBVIRT_URI, 'dominfo', '--domain', name]);
      const field = (label: string) => new RegExp(`^${label}:\\s+(\\d+)`, 'm').exec(stdout)?.[1];
      return {
        cpus: Number(field('CPU\\(s\\)')),
        maxKiB: Number(field('Max memory')),
        usedKiB: Number(field('Used memory')),
      };
    };
    expect(await dominfo()).toEqual({ cpus: 1, maxKiB: 64 * 1024, usedKiB: 64 * 1024 });

    expect(await hypervisor.setResources({ name, cpu: 2, memoryMiB: 256 })).toEqual({ cpu: 2, memoryMiB: 256 });
    expect(await dominfo()).toEqual({ cpus: 2, maxKiB: 256 * 1024, usedKiB: 256 * 1024 });
    // Down again, and one of the two alone: the other stays.
    expect(await hypervisor.setResources({ name, memoryMiB: 128 })).toEqual({ cpu: 2, memoryMiB: 128 });
    expect(await hypervisor.setResources({ name, cpu: 1 })).toEqual({ cpu: 1, memoryMiB: 128 });
    expect(await dominfo()).toEqual({ cpus: 1, maxKiB: 128 * 1024, usedKiB: 128 * 1024 });

    await hypervisor.start({ name });
    const running = await rejection(hypervisor.setResources({ name, cpu: 2 }));
    expect(running.code).toBe(NodeRuntimeErrorCode.INVALID_STATE);
    expect(running.message).toBe(`VM '${name}' is running; stop it before changing its CPUs or memory`);
    expect((await dominfo()).cpus).toBe(1);
    expect((await rejection(hypervisor.setResources({ name, cpu: 0 }))).code).toBe(ErrorCode.INVALID_INPUT);
    await hypervisor.destroy({ name });
    await hypervisor.undefine({ name, removeStorage: true });
  });

  it('maps libvirt errors to codes: NOT_FOUND, ALREADY_EXISTS, HYPERVISOR_UNAVAILABLE', async () => {
    const missing = await rejection(hypervisor.state({ name: `${prefix}-nosuch` }));
    expect(missing.code).toBe(ErrorCode.NOT_FOUND);
    expect(missing.message).toContain(`${prefix}-nosuch`);
    expect((await rejection(hypervisor.start({ name: `${prefix}-nosuch` }))).code).toBe(ErrorCode.NOT_FOUND);

    const name = `${prefix}-twice`;
    await hypervisor.define({ xml: (await tinyDomain(name)).xml });
    const again = await rejection(
      hypervisor.define({ xml: (await tinyDomain(name, { uuid: '00000000-0000-4000-8000-000000000001' })).xml }),
    );
    expect(again.code).toBe(ErrorCode.ALREADY_EXISTS);
    await hypervisor.undefine({ name, removeStorage: true });

    const nowhere = new LibvirtHypervisor({ runner: ssh, uri: 'qemu:///nosuch' });
    expect((await rejection(nowhere.list())).code).toBe(NodeRuntimeErrorCode.HYPERVISOR_UNAVAILABLE);
  });

  it('refuses names with shell metacharacters before running anything, and passes odd paths literally', async () => {
    const recording = new RecordingRunner(ssh);
    const guarded = new LibvirtHypervisor({ runner: recording });
    const marker = join(dir, 'ran');
    for (const name of [`x; touch ${marker}`, `$(touch ${marker})`, '--all', 'a b', '']) {
      expect((await rejection(guarded.state({ name }))).code).toBe(ErrorCode.INVALID_INPUT);
      expect((await rejection(guarded.start({ name }))).code).toBe(ErrorCode.INVALID_INPUT);
    }
    expect(recording.calls).toEqual([]);

    const name = `${prefix}-odd`;
    const odd = join(dir, `it's a "disk" $(touch ${marker.replaceAll('/', '_')}) \`id\`.qcow2`);
    await exec('qemu-img', ['create', '-q', '-f', 'qcow2', odd, '16M']);
    await guarded.define({ xml: (await tinyDomain(name)).xml });
    await guarded.attachDisk({ name, sourcePath: odd, target: 'vdc' });
    expect(parseDomainXml(await guarded.dumpXml({ name })).disks.map((d) => d.path)).toContain(odd);
    await guarded.undefine({ name, removeStorage: true });
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(odd)).toBe(true);
  });

  it('serves the same answers through the local runner as through SSH', async () => {
    const name = `${prefix}-same`;
    await hypervisor.define({ xml: (await tinyDomain(name)).xml });
    const local = new LibvirtHypervisor({ runner: new LocalCommandRunner() });
    const mine = (list: { name: string }[]) => list.filter((d) => d.name.startsWith(prefix));
    expect(mine(await local.list())).toEqual(mine(await hypervisor.list()));
    expect(await local.dumpXml({ name })).toBe(await hypervisor.dumpXml({ name }));
    await local.undefine({ name, removeStorage: true });
  });

  it('reports the host’s CPUs and memory as the kernel counts them', async () => {
    const host = await hypervisor.hostInfo();
    const memInfoKiB = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
    expect(host.cpus).toBe(availableParallelism());
    // libvirt counts the memory of its NUMA cells, which here (a VM with a sandboxed kernel) is
    // less than MemTotal: what matters is a real figure, never more than the machine has.
    expect(host.memoryMiB).toBeGreaterThan(64);
    expect(host.memoryMiB).toBeLessThanOrEqual(Math.ceil(memInfoKiB / 1024));
  });
});
