import { createVmSchema, type VmService } from '@quantix/control-plane';
import { type Quantix, VM_STATES, vmAddressSchema } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

const idParams = z.object({ id: z.string().min(1) });

/** Every failure's body (see http/errors.ts). */
const errorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }),
});

export function vmRoutes(app: FastifyInstance, deps: { quantix: Quantix; vms: VmService }): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/vms',
    {
      schema: {
        tags: ['vms'],
        querystring: z.object({ nodeId: z.string().optional(), state: z.enum(VM_STATES).optional() }),
      },
    },
    async (request) => ({ vms: await repositories.vms.list(request.query) }),
  );

  api.post(
    '/vms',
    {
      schema: {
        tags: ['vms'],
        summary: 'Create and start a VM from a ready image',
        description:
          'networks lists its NICs (a libvirt network of the node, or attachment "bridge"), each virtio with a MAC generated in 52:54:00:xx:xx:xx unless given; they are checked on the node first (404 NETWORK_NOT_FOUND, 409 NETWORK_NOT_ACTIVE).',
        body: createVmSchema,
      },
    },
    async (request, reply) => reply.status(201).send(await deps.vms.create(request.body)),
  );

  api.get('/vms/:id', { schema: { tags: ['vms'], params: idParams } }, async (request) =>
    repositories.vms.require(request.params.id),
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
          404: errorResponse,
          409: errorResponse,
        },
      },
    },
    async (request) => deps.vms.addresses(request.params.id),
  );

  api.post('/vms/:id/start', { schema: { tags: ['vms'], params: idParams } }, async (request) =>
    deps.vms.start(request.params.id),
  );

  api.post(
    '/vms/:id/stop',
    {
      schema: {
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
      },
    },
    async (request) =>
      deps.vms.stop(request.params.id, {
        force: request.body.force,
        ...(request.body.timeoutSeconds === undefined ? {} : { timeoutSeconds: request.body.timeoutSeconds }),
      }),
  );

  api.delete('/vms/:id', { schema: { tags: ['vms'], params: idParams } }, async (request, reply) => {
    await deps.vms.delete(request.params.id);
    return reply.status(204).send();
  });
}
