import { createVmSchema, type VmService } from '@quantix/control-plane';
import { type Quantix, VM_STATES, vmNameSchema } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { apiErrorSchema } from '../errors.js';

const idParams = z.object({ id: z.string().min(1) });

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
    { schema: { tags: ['vms'], summary: 'Create and start a VM from a ready image', body: createVmSchema } },
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
        body: z.object({ name: z.string().max(1024) }),
        response: {
          200: z.object({
            name: z.string(),
            ok: z.boolean(),
            problem: z
              .string()
              .nullable()
              .describe('what is wrong with the name, as POST /vms would say it; null when ok'),
          }),
          400: apiErrorSchema,
          401: apiErrorSchema,
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

  api.get('/vms/:id', { schema: { tags: ['vms'], params: idParams } }, async (request) =>
    repositories.vms.require(request.params.id),
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
