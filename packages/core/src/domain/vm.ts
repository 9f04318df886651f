import { z } from 'zod';
import { FIRMWARE_KINDS, IMAGE_FORMATS } from './image.js';
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
  /** The image the VM was created from: a cloud image or an ISO. */
  bootImageId: string | null;
  state: VmState;
  error: string | null;
  labels: Record<string, string>;
  version: number;
  createdAt: Date;
  updatedAt: Date;
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
