import { createVmSchema, type VmService } from '@quantix/control-plane';
import { DISK_BUSES, ErrorCode, FIRMWARE_KINDS, IMAGE_FORMATS, type Quantix, VM_STATES } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, noContent } from '../schemas.js';

const idParams = z.object({ id: z.string().min(1) });

const vmView = z.object({
  id: z.string(),
  name: z.string().describe('also the libvirt domain name'),
  nodeId: z.string(),
  cpu: z.number().int(),
  memoryMiB: z.number().int(),
  firmware: z.enum(FIRMWARE_KINDS),
  disks: z.array(
    z.object({
      imageId: z.string().nullable().describe('the image this disk was made from, if any'),
      poolId: z.string(),
      relPath: z.string(),
      sizeGiB: z.number(),
      format: z.enum(IMAGE_FORMATS),
      bus: z.enum(DISK_BUSES),
    }),
  ),
  cdroms: z.array(z.object({ imageId: z.string().nullable(), poolId: z.string(), relPath: z.string() })),
  bootImageId: z.string().nullable(),
  state: z.enum(VM_STATES),
  error: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  version: z.number().int(),
  createdAt: z.date(),
  updatedAt: z.date(),
});

/** What a request carried to the VM's node can fail with, besides the node's own codes (HYPERVISOR_*, …). */
const NODE_REQUEST_CODES = [ErrorCode.NODE_NOT_CONNECTED, ErrorCode.NODE_BUSY, ErrorCode.COMMAND_TIMEOUT];

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
        querystring: z.object({ nodeId: z.string().optional(), state: z.enum(VM_STATES).optional() }),
        response: { 200: z.object({ vms: z.array(vmView) }), ...errorResponses() },
      },
    },
    async (request) => ({ vms: await repositories.vms.list(request.query) }),
  );

  api.post(
    '/vms',
    {
      schema: {
        operationId: 'createVm',
        tags: ['vms'],
        summary: 'Create and start a VM from a ready image',
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
            ErrorCode.INSUFFICIENT_CAPACITY,
            ErrorCode.UNSUPPORTED_OPERATION,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request, reply) => reply.status(201).send(await deps.vms.create(request.body)),
  );

  api.get(
    '/vms/:id',
    {
      schema: {
        operationId: 'getVm',
        tags: ['vms'],
        summary: 'A VM',
        params: idParams,
        response: { 200: vmView, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => repositories.vms.require(request.params.id),
  );

  api.post(
    '/vms/:id/start',
    {
      schema: {
        operationId: 'startVm',
        tags: ['vms'],
        summary: 'Start a VM',
        params: idParams,
        response: {
          200: vmView,
          ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.VERSION_CONFLICT, ...NODE_REQUEST_CODES),
        },
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
          .object({
            force: z.boolean().default(false),
            timeoutSeconds: z.number().int().min(0).max(3600).optional(),
          })
          .default({ force: false }),
        response: {
          200: vmView,
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.VERSION_CONFLICT,
            ErrorCode.VM_DID_NOT_STOP,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request) =>
      deps.vms.stop(request.params.id, {
        force: request.body.force,
        ...(request.body.timeoutSeconds === undefined ? {} : { timeoutSeconds: request.body.timeoutSeconds }),
      }),
  );

  api.delete(
    '/vms/:id',
    {
      schema: {
        operationId: 'deleteVm',
        tags: ['vms'],
        summary: 'Destroy a VM, undefine it and delete its own files',
        params: idParams,
        response: { 204: noContent, ...errorResponses(ErrorCode.NOT_FOUND, ...NODE_REQUEST_CODES) },
      },
    },
    async (request, reply) => {
      await deps.vms.delete(request.params.id);
      return reply.status(204).send();
    },
  );
}
