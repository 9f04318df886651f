import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { buildDomainXml, type DomainSpec, parseDomainXml } from './domain-xml.js';
import { GOLDEN_DOMAINS } from './golden.js';

const fixtures = join(import.meta.dirname, '__fixtures__');
// QUANTIX_UPDATE_GOLDEN=1 rewrites the files; review the diff before committing it.
const update = process.env.QUANTIX_UPDATE_GOLDEN === '1';

describe('buildDomainXml', () => {
  it.each(Object.keys(GOLDEN_DOMAINS))('builds %s.xml byte for byte', (name) => {
    const xml = buildDomainXml(GOLDEN_DOMAINS[name] as DomainSpec);
    const file = join(fixtures, `${name}.xml`);
    if (update) writeFileSync(file, xml);
    expect(xml).toBe(readFileSync(file, 'utf8'));
  });

  it('gives each NIC its MAC, source and the virtio model, and reads them back in order', () => {
    const xml = buildDomainXml({
      name: 'web',
      memoryMiB: 256,
      vcpus: 1,
      networks: [
        { kind: 'network', network: 'default', mac: '52:54:00:0a:0b:0c' },
        { kind: 'bridge', bridge: 'br0', mac: '52:54:00:0d:0e:0f' },
      ],
    });
    expect(parseDomainXml(xml).interfaces).toEqual([
      { type: 'network', source: 'default', mac: '52:54:00:0a:0b:0c', model: 'virtio' },
      { type: 'bridge', source: 'br0', mac: '52:54:00:0d:0e:0f', model: 'virtio' },
    ]);
  });

  it('escapes every value, so a hostile path stays text and reads back unchanged', () => {
    const spec = GOLDEN_DOMAINS['escaped-values'] as DomainSpec;
    const xml = buildDomainXml(spec);
    expect(xml).not.toContain('<disk>');
    expect(xml).not.toContain('<b>');
    const info = parseDomainXml(xml);
    expect(info.disks.map((d) => d.path)).toEqual([spec.disks?.[0]?.path, spec.cdroms?.[0]?.path]);
    expect(info.vmId).toBe('vm&<id>');
    expect(info.ownedFiles).toEqual(spec.metadata?.ownedFiles);
  });

  it('reads back what it built: firmware, targets, buses, read-only CD-ROMs, owned files', () => {
    const info = parseDomainXml(buildDomainXml(GOLDEN_DOMAINS['uefi-iso'] as DomainSpec));
    expect(info).toMatchObject({ name: 'installer', firmware: 'uefi', uuid: null });
    expect(info.disks).toEqual([
      {
        device: 'disk',
        target: 'vda',
        bus: 'virtio',
        path: '/var/lib/quantix/vms/installer/disk0.qcow2',
        readOnly: false,
      },
      {
        device: 'cdrom',
        target: 'sda',
        bus: 'sata',
        path: '/mnt/nfs/iso/debian-12.5.0-amd64-netinst.iso',
        readOnly: true,
      },
    ]);
    expect(parseDomainXml(buildDomainXml(GOLDEN_DOMAINS['bios-cloud'] as DomainSpec)).firmware).toBe('bios');
  });

  it('records the guest OS in libosinfo metadata as virt-install does, and libvirt keeps it', () => {
    const spec = { ...(GOLDEN_DOMAINS['bios-cloud'] as DomainSpec), osinfoId: 'http://ubuntu.com/ubuntu/24.04' };
    const xml = buildDomainXml(spec);
    expect(parseDomainXml(xml).osinfoId).toBe('http://ubuntu.com/ubuntu/24.04');
    // libvirt's own test driver (no daemon): define it and read back what libvirt stored.
    const dir = mkdtempSync(join(tmpdir(), 'quantix-osinfo-xml-'));
    try {
      writeFileSync(join(dir, 'domain.xml'), xml);
      const dumped = execFileSync(
        'virsh',
        ['-c', 'test:///default', `define --validate ${join(dir, 'domain.xml')}; dumpxml ${spec.name}`],
        { encoding: 'utf8' },
      );
      expect(dumped).toMatch(
        /<metadata>[\s\S]*<libosinfo:libosinfo xmlns:libosinfo="http:\/\/libosinfo.org\/xmlns\/libvirt\/domain\/1.0">\s*<libosinfo:os id="http:\/\/ubuntu.com\/ubuntu\/24.04"\/>\s*<\/libosinfo:libosinfo>[\s\S]*<\/metadata>/,
      );
      expect(parseDomainXml(dumped).osinfoId).toBe('http://ubuntu.com/ubuntu/24.04');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(parseDomainXml(buildDomainXml(GOLDEN_DOMAINS['bios-cloud'] as DomainSpec)).osinfoId).toBeNull();
    expect(() => buildDomainXml({ ...spec, osinfoId: 'ubuntu"24.04' })).toThrow();
  });

  it('boots the CD-ROM first when asked, else the disk', () => {
    const base = { name: 'b', memoryMiB: 64, vcpus: 1, disks: [{ path: '/d.qcow2' }], cdroms: [{ path: '/c.iso' }] };
    const order = (xml: string) => [...xml.matchAll(/<boot order="(\d)"\/>/g)].map((m) => m[1]);
    expect(order(buildDomainXml({ ...base, bootFrom: 'disk' }))).toEqual(['1', '2']);
    expect(order(buildDomainXml({ ...base, bootFrom: 'cdrom' }))).toEqual(['2', '1']);
  });

  it.each([
    ['a name with shell metacharacters', { name: 'web;reboot' }],
    ['a name with a space', { name: 'web 01' }],
    ['a relative path', { disks: [{ path: 'vm/disk.qcow2' }] }],
    ['a path with ..', { disks: [{ path: '/srv/pool/../../etc/shadow' }] }],
    ['a path with a newline', { disks: [{ path: '/srv/a\nb.qcow2' }] }],
    ['a control character', { description: 'bell \u0007' }],
    ['a bad MAC', { networks: [{ kind: 'network', network: 'default', mac: 'zz:00:00:00:00:00' }] }],
    ['a bridge name that is not an interface', { networks: [{ kind: 'bridge', bridge: 'br0; ip link del' }] }],
    [
      'two devices on one target',
      {
        disks: [
          { path: '/a', target: 'vda' },
          { path: '/b', target: 'vda' },
        ],
      },
    ],
    ['an unknown field', { cpuPinning: true }],
  ])('refuses %s with INVALID_INPUT', (_what, patch) => {
    const spec = { name: 'ok', memoryMiB: 64, vcpus: 1, ...patch } as DomainSpec;
    expect(() => buildDomainXml(spec)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
  });

  it('allocates targets past vdz the way the kernel names disks', () => {
    const disks = Array.from({ length: 28 }, (_, i) => ({ path: `/d/${i}.qcow2` }));
    const info = parseDomainXml(buildDomainXml({ name: 'many', memoryMiB: 64, vcpus: 1, disks: disks.slice(0, 28) }));
    expect(info.disks.slice(24).map((d) => d.target)).toEqual(['vdy', 'vdz', 'vdaa', 'vdab']);
  });
});

describe('parseDomainXml', () => {
  it('refuses what is not a domain', () => {
    expect(() => parseDomainXml('<network><name>x</name></network>')).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
    );
  });

  it('reads vCPUs and memory as libvirt writes them back: current and maximum, in any unit', () => {
    // As `virsh dumpxml` prints a domain given fewer vCPUs and less memory than its maximum.
    const dumped = `<domain type='kvm'><name>web</name>
      <memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>524288</currentMemory>
      <vcpu placement='static' current='2'>4</vcpu></domain>`;
    expect(parseDomainXml(dumped).resources).toEqual({ cpu: 2, maxCpu: 4, memoryMiB: 512, maxMemoryMiB: 1024 });
    // Quantix's own XML: MiB, no currentMemory, no current attribute (all of it, from the start).
    const built = buildDomainXml({ name: 'web', memoryMiB: 768, vcpus: 3 });
    expect(parseDomainXml(built).resources).toEqual({ cpu: 3, maxCpu: 3, memoryMiB: 768, maxMemoryMiB: 768 });
    const gib = `<domain><name>big</name><memory unit='GiB'>2</memory><vcpu>1</vcpu></domain>`;
    expect(parseDomainXml(gib).resources).toMatchObject({ memoryMiB: 2048, maxMemoryMiB: 2048 });
  });

  it('reads where a running domain’s consoles are: its serial pty and log, and its VNC address', () => {
    // The live XML of a running domain, as `virsh dumpxml` prints it (libvirt fills in pty and port).
    const live = `<domain type='kvm' id='3'><name>web</name><devices>
      <serial type='pty'><source path='/dev/pts/4'/><log file='/var/log/libvirt/qemu/web-serial0.log' append='off'/><target type='isa-serial' port='0'/></serial>
      <console type='pty' tty='/dev/pts/4'><source path='/dev/pts/4'/><target type='serial' port='0'/></console>
      <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
    </devices></domain>`;
    expect(parseDomainXml(live).consoles).toEqual({
      serialPty: '/dev/pts/4',
      serialLog: '/var/log/libvirt/qemu/web-serial0.log',
      vnc: { host: '127.0.0.1', port: 5901 },
    });
    // A log path that leaves its directory is not one to replay.
    const escaping = live.replace('/var/log/libvirt/qemu/web-serial0.log', '/var/log/../../etc/shadow');
    expect(parseDomainXml(escaping).consoles.serialLog).toBeNull();
    // Defined but not started: autoport leaves port -1 and there is no pty yet.
    const defined = buildDomainXml({ name: 'web', memoryMiB: 64, vcpus: 1, graphics: 'vnc' });
    // Its serial log is already named: QEMU writes it from the domain's first instruction.
    expect(parseDomainXml(defined).consoles).toEqual({
      serialPty: null,
      serialLog: '/var/log/libvirt/qemu/web-serial0.log',
      vnc: null,
    });
  });
});
