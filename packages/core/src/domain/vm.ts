import { z } from 'zod';
import { FIRMWARE_KINDS, IMAGE_FORMATS } from './image.js';
import { type VmNic, vmNicSchema } from './network.js';
import { assertRelPath } from './paths.js';
import { idSchema, labelsSchema, parseOrThrow } from './validation.js';

export const VM_STATES = ['creating', 'stopped', 'running', 'paused', 'error', 'deleting'] as const;
export type VmState = (typeof VM_STATES)[number];

export const DISK_BUSES = ['virtio', 'sata', 'scsi', 'ide'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];

export interface VmDisk {
  /** The image this disk was made from (a cloud image's overlay), if any. */
  imageId: string | null;
  poolId: string;
  relPath: string;
  sizeGiB: number;
  format: (typeof IMAGE_FORMATS)[number];
  bus: DiskBus;
}

export interface VmCdrom {
  imageId: string | null;
  poolId: string;
  relPath: string;
}

export interface Vm {
  id: string;
  /** Also the libvirt domain name: letters, digits, '.', '_' and '-' only. */
  name: string;
  nodeId: string;
  cpu: number;
  memoryMiB: number;
  firmware: (typeof FIRMWARE_KINDS)[number];
  disks: VmDisk[];
  cdroms: VmCdrom[];
  /** Its network interfaces, in the order the guest sees them (eth0 first); MACs fixed at creation. */
  nics: VmNic[];
  /** The image the VM was created from: a cloud image or an ISO. */
  bootImageId: string | null;
  state: VmState;
  error: string | null;
  labels: Record<string, string>;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * The directory, at a pool's root, that holds each VM's own files: `vms/<name>/disk.qcow2`,
 * `vms/<name>/seed.iso` (its cloud-init user data and SSH keys). They belong to that VM and are
 * never images: scans do not list this directory.
 */
export const VM_FILES_DIRECTORY = 'vms';

/** Where a VM's own files go in a pool: `vms/<name>/<file>`. */
export function vmFileRelPath(vmName: string, file: string): string {
  return `${VM_FILES_DIRECTORY}/${vmName}/${file}`;
}

/** Whether a relPath lies in the VM-files directory of its pool (`vms/…`). */
export function isVmFileRelPath(relPath: string): boolean {
  return relPath === VM_FILES_DIRECTORY || relPath.startsWith(`${VM_FILES_DIRECTORY}/`);
}

const BOOTS_FROM = 'boots from it';
const IN_A_CDROM = 'it is in a cdrom drive';

/**
 * How each VM uses an image, if at all: it boots from it, a disk is made from it (the backing
 * file of a cloud image's overlay), a cdrom holds it, or the image's file is one of the VM's own
 * (its disk, its seed, anything in its `vms/<name>/` directory). Deleting such an image would
 * break the VM. `ejectable`: every use ends when the VM's CD-ROMs are ejected.
 */
export function vmsUsingImage(
  vms: readonly Vm[],
  image: { id: string; location: { poolId: string; relPath: string } | null },
): { vm: Vm; uses: string[]; ejectable: boolean }[] {
  const found: { vm: Vm; uses: string[]; ejectable: boolean }[] = [];
  const at = image.location;
  const sameFile = (item: { poolId: string; relPath: string }) =>
    at !== null && item.poolId === at.poolId && item.relPath === at.relPath;
  for (const vm of vms) {
    const uses = new Set<string>();
    if (vm.bootImageId === image.id) uses.add(BOOTS_FROM);
    for (const disk of vm.disks) {
      if (disk.imageId === image.id) uses.add('a disk is made from it');
      if (sameFile(disk)) uses.add('it is a disk');
    }
    for (const cdrom of vm.cdroms) {
      if (cdrom.imageId === image.id || sameFile(cdrom)) uses.add(IN_A_CDROM);
    }
    // The VM's own folder in every pool it keeps files in (its seed.iso is in no record).
    const ownFolder = vmFileRelPath(vm.name, '');
    const pools = new Set([...vm.disks, ...vm.cdroms].map((item) => item.poolId));
    if (at && pools.has(at.poolId) && at.relPath.startsWith(ownFolder)) uses.add("it is one of the VM's own files");
    // Only in a CD-ROM drive (and booted from there): ejecting it ends every use.
    const ejectable = uses.has(IN_A_CDROM) && [...uses].every((use) => use === IN_A_CDROM || use === BOOTS_FROM);
    if (uses.size > 0) found.push({ vm, uses: [...uses], ejectable });
  }
  return found;
}

/** Domain names go to virsh as arguments and into file names: keep them plain. */
export const vmNameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'may contain only letters, digits, ".", "_" and "-", and must start with a letter or digit',
  );

const diskSchema = z
  .object({
    imageId: idSchema.nullable().default(null),
    poolId: idSchema,
    relPath: z.string(),
    sizeGiB: z.number().int().min(1).max(65_536),
    format: z.enum(IMAGE_FORMATS).default('qcow2'),
    bus: z.enum(DISK_BUSES).default('virtio'),
  })
  .strict();

const cdromSchema = z
  .object({ imageId: idSchema.nullable().default(null), poolId: idSchema, relPath: z.string() })
  .strict();

const vmFields = {
  name: vmNameSchema,
  nodeId: idSchema,
  cpu: z.number().int().min(1).max(1024),
  memoryMiB: z
    .number()
    .int()
    .min(16)
    .max(16 * 1024 * 1024),
  firmware: z.enum(FIRMWARE_KINDS),
  disks: z.array(diskSchema).max(64),
  cdroms: z.array(cdromSchema).max(8),
  nics: z.array(vmNicSchema).max(16),
  bootImageId: idSchema.nullable(),
  state: z.enum(VM_STATES),
  error: z.string().nullable(),
  labels: labelsSchema,
};

const newVmSchema = z
  .object({
    id: idSchema.optional(),
    name: vmFields.name,
    nodeId: vmFields.nodeId,
    cpu: vmFields.cpu.default(1),
    memoryMiB: vmFields.memoryMiB.default(1024),
    firmware: vmFields.firmware.default('bios'),
    disks: vmFields.disks.default([]),
    cdroms: vmFields.cdroms.default([]),
    nics: vmFields.nics.default([]),
    bootImageId: vmFields.bootImageId.default(null),
    state: vmFields.state.default('creating'),
    error: vmFields.error.default(null),
    labels: vmFields.labels.default({}),
  })
  .strict();

export type NewVm = z.input<typeof newVmSchema>;
export type ValidNewVm = z.output<typeof newVmSchema>;

const vmPatchSchema = z.object(vmFields).omit({ name: true, nodeId: true }).partial().strict();
export type VmPatch = z.input<typeof vmPatchSchema>;
export type ValidVmPatch = z.output<typeof vmPatchSchema>;

function checkPaths(vm: { disks?: { relPath: string }[]; cdroms?: { relPath: string }[] }): void {
  for (const item of [...(vm.disks ?? []), ...(vm.cdroms ?? [])]) assertRelPath(item.relPath);
}

export function validateNewVm(input: NewVm): ValidNewVm {
  const vm = parseOrThrow(newVmSchema, input, 'VM');
  checkPaths(vm);
  return vm;
}

export function validateVmPatch(patch: VmPatch): ValidVmPatch {
  const valid = parseOrThrow(vmPatchSchema, patch, 'VM update');
  checkPaths(valid);
  return valid;
}
