import { z } from 'zod';
import { idSchema, labelsSchema, parseOrThrow } from './validation.js';

export const NODE_CONNECTION_STATES = ['connected', 'disconnected'] as const;
export type NodeConnectionState = (typeof NODE_CONNECTION_STATES)[number];

/** A hypervisor host running the node daemon. */
export interface Node {
  id: string;
  hostname: string;
  address: string | null;
  labels: Record<string, string>;
  connectionState: NodeConnectionState;
  lastSeenAt: Date | null;
  agentVersion: string | null;
  capabilities: Record<string, unknown>;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

const hostnameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'must be a valid host name');

const nodeFields = {
  hostname: hostnameSchema,
  address: z.string().min(1).max(255).nullable(),
  labels: labelsSchema,
  connectionState: z.enum(NODE_CONNECTION_STATES),
  lastSeenAt: z.date().nullable(),
  agentVersion: z.string().max(64).nullable(),
  capabilities: z.record(z.string(), z.unknown()),
};

const newNodeSchema = z
  .object({
    id: idSchema.optional(),
    hostname: nodeFields.hostname,
    address: nodeFields.address.default(null),
    labels: nodeFields.labels.default({}),
    connectionState: nodeFields.connectionState.default('disconnected'),
    lastSeenAt: nodeFields.lastSeenAt.default(null),
    agentVersion: nodeFields.agentVersion.default(null),
    capabilities: nodeFields.capabilities.default({}),
  })
  .strict();

export type NewNode = z.input<typeof newNodeSchema>;
export type ValidNewNode = z.output<typeof newNodeSchema>;

const nodePatchSchema = z.object(nodeFields).partial().strict();
export type NodePatch = z.input<typeof nodePatchSchema>;
export type ValidNodePatch = z.output<typeof nodePatchSchema>;

export function validateNewNode(input: NewNode): ValidNewNode {
  return parseOrThrow(newNodeSchema, input, 'node');
}

export function validateNodePatch(patch: NodePatch): ValidNodePatch {
  return parseOrThrow(nodePatchSchema, patch, 'node update');
}
