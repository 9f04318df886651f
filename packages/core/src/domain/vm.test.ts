import { describe, expect, it } from 'vitest';
import { type Vm, vmsUsingImage } from './vm.js';

describe('vmsUsingImage', () => {
  const vm = (name: string, fields: Partial<Vm>): Vm => ({
    id: `id-${name}`,
    name,
    nodeId: 'n1',
    cpu: 1,
    memoryMiB: 512,
    firmware: 'bios',
    disks: [],
    cdroms: [],
    nics: [],
    bootImageId: null,
    state: 'running',
    error: null,
    labels: {},
    version: 1,
    createdAt: new Date(),
    updatedAt: new Date(),
    ...fields,
  });
  const disk = (name: string, imageId: string | null) => ({
    imageId,
    poolId: 'local',
    relPath: `vms/${name}/disk.qcow2`,
    sizeGiB: 10,
    format: 'qcow2' as const,
    bus: 'virtio' as const,
  });
  const vms = [
    vm('web', { bootImageId: 'cloud-1', disks: [disk('web', 'cloud-1')] }),
    vm('installer', {
      bootImageId: 'iso-1',
      disks: [disk('installer', null)],
      cdroms: [{ imageId: 'iso-1', poolId: 'local', relPath: 'debian.iso' }],
    }),
    vm('attached', { cdroms: [{ imageId: null, poolId: 'local', relPath: 'debian.iso' }] }),
  ];

  it('finds VMs that boot from an image, are backed by it, hold it in a cdrom, or own its file', () => {
    expect(
      vmsUsingImage(vms, { id: 'cloud-1', location: { poolId: 'local', relPath: 'cloud/x.qcow2' } }).map((u) => [
        u.vm.name,
        u.uses,
      ]),
    ).toEqual([['web', ['boots from it', 'a disk is made from it']]]);
    expect(
      vmsUsingImage(vms, { id: 'iso-1', location: { poolId: 'local', relPath: 'debian.iso' } }).map((u) => u.vm.name),
    ).toEqual(['installer', 'attached']);
    // A row made from a VM's seed (before scans skipped vms/): the VM's own file.
    expect(
      vmsUsingImage(vms, { id: 'seed', location: { poolId: 'local', relPath: 'vms/web/seed.iso' } }).map((u) => [
        u.vm.name,
        u.uses,
      ]),
    ).toEqual([['web', ["it is one of the VM's own files"]]]);
    expect(vmsUsingImage(vms, { id: 'other', location: { poolId: 'local', relPath: 'vms/webby/x.iso' } })).toEqual([]);
    expect(vmsUsingImage(vms, { id: 'other', location: null })).toEqual([]);
  });

  it('says which uses end when the VM ejects its CD-ROMs: an ISO in a drive, not a disk or a VM file', () => {
    const ejectable = (image: { id: string; location: { poolId: string; relPath: string } }) =>
      vmsUsingImage(vms, image).map((u) => [u.vm.name, u.ejectable]);
    expect(ejectable({ id: 'iso-1', location: { poolId: 'local', relPath: 'debian.iso' } })).toEqual([
      ['installer', true],
      ['attached', true],
    ]);
    expect(ejectable({ id: 'cloud-1', location: { poolId: 'local', relPath: 'cloud/x.qcow2' } })).toEqual([
      ['web', false],
    ]);
    expect(ejectable({ id: 'seed', location: { poolId: 'local', relPath: 'vms/web/seed.iso' } })).toEqual([
      ['web', false],
    ]);
  });
});
