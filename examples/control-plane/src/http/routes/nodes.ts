import type { NodeHub, NodeService, ReplicaRegistry, VmService } from '@quantix/control-plane';
import { ErrorCode, hostNetworkSchema, NODE_CONNECTION_STATES, type Quantix } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, NODE_REQUEST_CODES, noContent } from '../schemas.js';
import { poolNodeStateView, poolView } from './pools.js';

const idParams = z.object({ id: z.string().min(1) });

/** A node as the API shows it: its record and the replica holding its connection. */
const nodeView = z.object({
  id: z.string(),
  hostname: z.string(),
  address: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  connectionState: z.enum(NODE_CONNECTION_STATES),
  lastSeenAt: z.date().nullable(),
  agentVersion: z.string().nullable(),
  capabilities: z.record(z.string(), z.unknown()),
  version: z.number().int(),
  createdAt: z.date(),
  updatedAt: z.date(),
  replicaId: z
    .string()
    .nullable()
    .describe('the control-plane replica holding its connection now (see GET /replicas); null when none does'),
});

/** A node's record, as registering it answers. */
const nodeRecord = nodeView.omit({ replicaId: true });

const nodeToken = z.string().describe('the node’s connection token: shown only this once, stored only as a digest');

const nodeDetail = nodeView.extend({
  connected: z.boolean().describe('connected to this replica, or to another one that can carry requests to it'),
  pools: z.array(
    z.object({
      pool: poolView.omit({ nodeStates: true }),
      state: poolNodeStateView.nullable().describe('the pool’s state on this node, null until the node reports it'),
    }),
  ),
});

export function nodeRoutes(
  app: FastifyInstance,
  deps: {
    quantix: Quantix;
    hub: NodeHub;
    replicas: ReplicaRegistry;
    vms: VmService;
    nodes: NodeService;
  },
): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/nodes',
    {
      schema: {
        operationId: 'listNodes',
        tags: ['nodes'],
        summary: 'List nodes, whether they are connected, and the replica holding each',
        response: { 200: z.object({ nodes: z.array(nodeView) }), ...errorResponses() },
      },
    },
    async () => {
      // One look at the leases for the whole list, rather than one query per node.
      const holders = new Map<string, string>();
      for (const replica of await deps.replicas.liveReplicas()) {
        for (const nodeId of replica.nodeIds) holders.set(nodeId, replica.id);
      }
      const nodes = await repositories.nodes.list();
      return { nodes: nodes.map((node) => ({ ...node, replicaId: holders.get(node.id) ?? null })) };
    },
  );

  api.post(
    '/nodes',
    {
      schema: {
        operationId: 'createNode',
        tags: ['nodes'],
        summary: 'Register a node; the answer carries its connection token, shown only this once',
        body: z.strictObject({
          id: z.string().min(1).optional(),
          hostname: z.string().min(1),
          address: z.string().nullable().optional(),
          labels: z.record(z.string(), z.string()).optional(),
        }),
        response: {
          201: z.object({ node: nodeRecord, token: nodeToken }),
          ...errorResponses(ErrorCode.ALREADY_EXISTS),
        },
      },
    },
    async (request, reply) => reply.status(201).send(await deps.nodes.register(request.body)),
  );

  api.get(
    '/nodes/:id',
    {
      schema: {
        operationId: 'getNode',
        tags: ['nodes'],
        summary: 'A node with the replica holding it and its pools with their state on it',
        params: idParams,
        response: { 200: nodeDetail, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => {
      const node = await repositories.nodes.require(request.params.id);
      const pools = await repositories.pools.list({ nodeId: node.id });
      const states = await repositories.pools.listNodeStates({ nodeId: node.id });
      return {
        ...node,
        replicaId: await deps.replicas.holderOf(node.id),
        connected: deps.hub.isConnected(node.id),
        pools: pools.map((pool) => {
          const state = states.find((s) => s.poolId === pool.id);
          return { pool: { ...pool }, state: state ? { ...state } : null };
        }),
      };
    },
  );

  api.get(
    '/nodes/:id/networks',
    {
      schema: {
        tags: ['nodes'],
        operationId: 'listNodeNetworks',
        summary: 'The libvirt networks and host bridges of a node: what a VM’s NIC can plug into there',
        description:
          'Asked of the node now. A libvirt network is named as is in a VM’s networks (default); a host bridge as attachment "bridge". 404 NOT_FOUND for an unknown node, 409 NODE_NOT_CONNECTED when it is not connected.',
        params: idParams,
        response: {
          200: z.object({ nodeId: z.string(), networks: z.array(hostNetworkSchema) }),
          ...errorResponses(ErrorCode.NOT_FOUND, ...NODE_REQUEST_CODES, ErrorCode.UNSUPPORTED_OPERATION),
        },
      },
    },
    async (request) => ({
      nodeId: request.params.id,
      networks: await deps.vms.networks(request.params.id),
    }),
  );

  api.post(
    '/nodes/:id/token',
    {
      schema: {
        operationId: 'issueNodeToken',
        tags: ['nodes'],
        summary: 'Issue a new token: the old one stops working, and a connection opened with it is closed (4005)',
        description: 'IN_USE for a node whose daemon runs inside the control plane (`quantix up`’s local node).',
        params: idParams,
        response: {
          200: z.object({ nodeId: z.string(), token: nodeToken }),
          ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.IN_USE),
        },
      },
    },
    async (request) => {
      return { nodeId: request.params.id, token: await deps.nodes.issueToken(request.params.id) };
    },
  );

  api.delete(
    '/nodes/:id',
    {
      schema: {
        operationId: 'deleteNode',
        tags: ['nodes'],
        summary: 'Remove a node (refused while it has VMs); its connection is closed (4004)',
        description:
          'IN_USE while it has VMs, and for a node whose daemon runs inside the control plane (`quantix up`’s local node).',
        params: idParams,
        response: { 204: noContent, ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.IN_USE) },
      },
    },
    async (request, reply) => {
      await deps.nodes.remove(request.params.id);
      return reply.status(204).send();
    },
  );
}
