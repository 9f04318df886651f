import { ControlPlaneErrorCode, createVmSchema, resizeVmSchema, type VmService } from '@quantix/control-plane';
import {
  DISK_BUSES,
  ErrorCode,
  FIRMWARE_KINDS,
  IMAGE_FORMATS,
  type Quantix,
  VM_STATES,
  vmAddressSchema,
  vmNameSchema,
  vmNicSchema,
} from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, HYPERVISOR_CODES, NODE_REQUEST_CODES, noContent } from '../schemas.js';

const idParams = z.object({ id: z.string().min(1) });

const onNode = {
  path: z.string().nullable().describe('where the file is on the VM’s node; null while its pool is not active there'),
};

// Every field is listed: the answer carries only these (NICs, addresses, a console URL join here when VMs have them).
const vmView = z.object({
  id: z.string(),
  name: z.string(),
  nodeId: z.string(),
  cpu: z.number().int(),
  memoryMiB: z.number().int(),
  firmware: z.enum(FIRMWARE_KINDS),
  disks: z.array(
    z.object({
      imageId: z.string().nullable().describe('the image an overlay was made from; never removed with the VM'),
      poolId: z.string(),
      relPath: z.string(),
      sizeGiB: z.number().int(),
      format: z.enum(IMAGE_FORMATS),
      bus: z.enum(DISK_BUSES),
    }),
  ),
  cdroms: z.array(z.object({ imageId: z.string().nullable(), poolId: z.string(), relPath: z.string() })),
  nics: z
    .array(vmNicSchema)
    .describe('its NICs in order (eth0 first): network or bridge, virtio, the MAC kept for its life'),
  bootImageId: z.string().nullable(),
  state: z.enum(VM_STATES),
  error: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  version: z.number().int(),
  createdAt: z.date(),
  updatedAt: z.date(),
});

const vmDetail = vmView.extend({
  disks: z.array(vmView.shape.disks.element.extend(onNode)),
  cdroms: z.array(vmView.shape.cdroms.element.extend(onNode)),
  nodeConnected: z.boolean().describe('whether the VM’s node is connected now'),
});

const osFigures = z
  .object({
    cpus: z.number().int().nullable(),
    memoryMiB: z.number().int().nullable(),
    diskGiB: z.number().int().nullable(),
  })
  .nullable();

const vmDefaults = z.object({
  cpu: z.number().int().describe('vCPUs a new VM of this image gets when none are asked for'),
  memoryMiB: z.number().int(),
  diskGiB: z.number().int().describe('never below the image’s requirements nor, for a cloud image, its virtual size'),
  firmware: z.enum(['bios', 'uefi']).describe('the firmware the image needs, else bios'),
  os: z
    .object({
      osId: z.string().describe('libosinfo’s id of the OS, recorded in the domain’s metadata'),
      name: z.string(),
      exact: z.boolean().describe('false when osinfo-db does not list this release and the figures are of basedOn'),
      basedOn: z.string().describe('the osinfo-db entry the figures come from (short id)'),
      minimum: osFigures,
      recommended: osFigures,
    })
    .nullable()
    .describe('osinfo-db’s minimum and recommended resources for the image’s OS; null when it does not know it'),
});

/** The errors a request about one VM can meet on its node, beside bad input. */
const ON_NODE_CODES = [ErrorCode.NOT_FOUND, ErrorCode.VERSION_CONFLICT, ...NODE_REQUEST_CODES, ...HYPERVISOR_CODES];

export function vmRoutes(app: FastifyInstance, deps: { quantix: Quantix; vms: VmService }): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/vms',
    {
      schema: {
        operationId: 'listVms',
        tags: ['vms'],
        summary: 'List VMs, on one node or in one state',
        querystring: z.strictObject({ nodeId: z.string().optional(), state: z.enum(VM_STATES).optional() }),
        response: { 200: z.object({ vms: z.array(vmView) }), ...errorResponses() },
      },
    },
    async (request) => ({ vms: await repositories.vms.list(request.query) }),
  );

  api.get(
    '/images/:id/vm-defaults',
    {
      schema: {
        tags: ['images'],
        operationId: 'imageVmDefaults',
        summary:
          'The CPUs, memory and disk a VM of this image gets when they are left out: osinfo-db’s recommended resources for its OS (with the minimum)',
        params: idParams,
        response: { 200: vmDefaults, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => deps.vms.defaultsFor(request.params.id),
  );

  api.post(
    '/vms',
    {
      schema: {
        operationId: 'createVm',
        tags: ['vms'],
        summary: 'Create and start a VM from a ready image',
        description:
          'networks lists its NICs (a libvirt network of the node, or attachment "bridge"), each virtio with a MAC generated in 52:54:00:xx:xx:xx unless given; they are checked on the node first (404 NETWORK_NOT_FOUND, 409 NETWORK_NOT_ACTIVE). Sizes and firmware below what the image needs (its requirements; a disk smaller than a cloud image) are refused with 422 BELOW_IMAGE_REQUIREMENTS; those left out are the image’s VM defaults. An ISO without a boot record (a data disc: drivers, tools) is refused with 422 IMAGE_NOT_BOOTABLE: insert it into a VM instead.',
        body: createVmSchema,
        response: {
          201: vmView,
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.ALREADY_EXISTS,
            ErrorCode.IMAGE_NOT_FOUND,
            ErrorCode.IMAGE_NOT_READY,
            ErrorCode.IMAGE_NO_LOCATION,
            ErrorCode.IMAGE_FILE_MISSING,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.NETWORK_NOT_FOUND,
            ErrorCode.NETWORK_NOT_ACTIVE,
            ErrorCode.INSUFFICIENT_CAPACITY,
            ControlPlaneErrorCode.BELOW_IMAGE_REQUIREMENTS,
            ControlPlaneErrorCode.IMAGE_NOT_BOOTABLE,
            ErrorCode.UNSUPPORTED_OPERATION,
            ...NODE_REQUEST_CODES,
            ...HYPERVISOR_CODES,
          ),
        },
      },
    },
    async (request, reply) => reply.status(201).send(await deps.vms.create(request.body)),
  );

  api.post(
    '/vms/name-check',
    {
      schema: {
        tags: ['vms'],
        operationId: 'checkVmName',
        summary:
          'Whether a VM could be created with this name now: the rules POST /vms applies to names, and no VM already has it',
        body: z.strictObject({ name: z.string().max(1024) }),
        response: {
          200: z.object({
            name: z.string(),
            ok: z.boolean(),
            problem: z
              .string()
              .nullable()
              .describe('what is wrong with the name, as POST /vms would say it; null when ok'),
          }),
          ...errorResponses(),
        },
      },
    },
    async (request) => {
      const { name } = request.body;
      const parsed = vmNameSchema.safeParse(name);
      const problem = !parsed.success
        ? (parsed.error.issues[0]?.message ?? 'is not a valid VM name')
        : (await repositories.vms.getByName(name))
          ? `A VM named ${name} already exists; pick another name`
          : null;
      return { name, ok: problem === null, problem };
    },
  );

  api.get(
    '/vms/:id',
    {
      schema: {
        tags: ['vms'],
        operationId: 'showVm',
        summary: 'A VM by id or name: its state, and its disks and CD-ROMs with their paths on its node',
        params: z.object({ id: z.string().min(1).describe('the VM’s id or name') }),
        response: { 200: vmDetail, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => deps.vms.show(request.params.id),
  );

  api.get(
    '/vms/:id/addresses',
    {
      schema: {
        tags: ['vms'],
        operationId: 'getVmAddresses',
        summary: 'Where a VM can be reached: its addresses from libvirt’s DHCP leases, or its guest agent',
        description:
          'Asked of its node now; empty while the guest has no lease yet, and for a stopped VM. 404 NOT_FOUND for an unknown VM, 409 NODE_NOT_CONNECTED when its node is not connected.',
        params: idParams,
        response: {
          200: z.object({ vmId: z.string(), addresses: z.array(vmAddressSchema) }),
          ...errorResponses(ErrorCode.NOT_FOUND, ...NODE_REQUEST_CODES, ...HYPERVISOR_CODES),
        },
      },
    },
    async (request) => deps.vms.addresses(request.params.id),
  );

  api.post(
    '/vms/:id/start',
    {
      schema: {
        operationId: 'startVm',
        tags: ['vms'],
        summary: 'Start a VM',
        description:
          'Starts a stopped VM, or lets a paused one run on (paused outside Quantix, or by QEMU when a disk failed to write). A running VM is no error: the answer says it runs.',
        params: idParams,
        response: { 200: vmView, ...errorResponses(...ON_NODE_CODES) },
      },
    },
    async (request) => deps.vms.start(request.params.id),
  );

  api.post(
    '/vms/:id/stop',
    {
      schema: {
        operationId: 'stopVm',
        tags: ['vms'],
        summary:
          'Stop a VM: an ACPI shutdown, then up to timeoutSeconds for the guest to power off; force powers it off if it has not (VM_DID_NOT_STOP without force)',
        params: idParams,
        body: z
          .strictObject({
            force: z.boolean().default(false),
            timeoutSeconds: z.number().int().min(0).max(3600).optional(),
          })
          .default({ force: false }),
        response: { 200: vmView, ...errorResponses(...ON_NODE_CODES, ErrorCode.VM_DID_NOT_STOP) },
      },
    },
    async (request) =>
      deps.vms.stop(request.params.id, {
        force: request.body.force,
        ...(request.body.timeoutSeconds === undefined ? {} : { timeoutSeconds: request.body.timeoutSeconds }),
      }),
  );

  api.post(
    '/vms/:id/reboot',
    {
      schema: {
        tags: ['vms'],
        operationId: 'rebootVm',
        summary: 'Reboot a running VM: an ACPI reboot the guest carries out (INVALID_STATE when it is not running)',
        params: idParams,
        response: { 200: vmView, ...errorResponses(...ON_NODE_CODES) },
      },
    },
    async (request) => deps.vms.reboot(request.params.id),
  );

  api.post(
    '/vms/:id/eject',
    {
      schema: {
        tags: ['vms'],
        operationId: 'ejectVmCdroms',
        summary:
          'Take the ISOs out of a VM’s CD-ROM drives (its installer, once the OS is on the disk), running or stopped: the drives stay, empty, and it boots from its disk; the ISOs can then be deleted',
        params: idParams,
        response: {
          200: vmView,
          ...errorResponses(...ON_NODE_CODES, ErrorCode.UNSUPPORTED_OPERATION, ControlPlaneErrorCode.VM_BUSY),
        },
      },
    },
    async (request) => deps.vms.eject(request.params.id),
  );

  api.post(
    '/vms/:id/insert',
    {
      schema: {
        tags: ['vms'],
        operationId: 'insertVmCdrom',
        summary:
          'Put a ready ISO into a VM’s empty CD-ROM drive (drivers, a rescue system, its installer again), running or stopped; it stays in use until ejected',
        description:
          'The ISO is checked as for a VM’s creation: ready, its pool active on the VM’s node, its file there. 409 INVALID_STATE when no drive is empty (a VM made from a cloud image holds its cloud-init seed in its only drive; an ISO VM holds its installer until ejected).',
        params: idParams,
        body: z.strictObject({ imageId: z.string().min(1).describe('a ready ISO image') }),
        response: {
          200: vmView,
          ...errorResponses(
            ...ON_NODE_CODES,
            ErrorCode.IMAGE_NOT_FOUND,
            ErrorCode.IMAGE_NOT_READY,
            ErrorCode.IMAGE_NO_LOCATION,
            ErrorCode.IMAGE_FILE_MISSING,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.UNSUPPORTED_OPERATION,
            ControlPlaneErrorCode.VM_BUSY,
          ),
        },
      },
    },
    async (request) => deps.vms.insert(request.params.id, request.body.imageId),
  );

  api.patch(
    '/vms/:id',
    {
      schema: {
        tags: ['vms'],
        operationId: 'resizeVm',
        summary: 'Give a stopped VM other vCPUs or memory (either or both), from its next start',
        description:
          'Set in its domain’s definition on its node, then in its record. 409 INVALID_STATE while it runs (stop it first), 422 INSUFFICIENT_CAPACITY beyond what its node has, 422 BELOW_IMAGE_REQUIREMENTS below what the image it was made from needs, 409 VM_BUSY while it is being created or deleted.',
        params: idParams,
        body: resizeVmSchema,
        response: {
          200: vmView,
          ...errorResponses(
            ...ON_NODE_CODES,
            ErrorCode.INSUFFICIENT_CAPACITY,
            ControlPlaneErrorCode.BELOW_IMAGE_REQUIREMENTS,
            ErrorCode.UNSUPPORTED_OPERATION,
            ControlPlaneErrorCode.VM_BUSY,
          ),
        },
      },
    },
    async (request) => deps.vms.resize(request.params.id, request.body),
  );

  api.delete(
    '/vms/:id',
    {
      schema: {
        tags: ['vms'],
        operationId: 'deleteVm',
        summary:
          'Delete a VM with the files made for it (its overlay or disk, its cloud-init seed), powering it off first; the image it was made from stays',
        params: idParams,
        response: { 204: noContent, ...errorResponses(...ON_NODE_CODES) },
      },
    },
    async (request, reply) => {
      await deps.vms.delete(request.params.id);
      return reply.status(204).send();
    },
  );
}
