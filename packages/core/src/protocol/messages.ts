import { z } from 'zod';
import { CHECKSUM_ALGORITHMS, IMAGE_FORMATS, IMAGE_KINDS, OS_FAMILIES } from '../domain/image.js';
import { POOL_CONTENT_TYPES, POOL_NODE_STATUSES } from '../domain/pool.js';
import { ErrorCode, QuantixError } from '../errors.js';

/**
 * The control-plane ⇄ node protocol. The node daemon dials the control plane and keeps one
 * authenticated connection; every frame is one JSON message `{ v, type, ... }`, validated by
 * these schemas on both sides. `v` is the protocol version: a peer speaking another version
 * is refused at hello with PROTOCOL_VERSION.
 *
 * Requests that expect an answer carry a `requestId`; the answer is `response` with the same
 * id and either `result` or `error` ({ code, message } — a QuantixError code).
 */
export const PROTOCOL_VERSION = 1;

const id = z.string().min(1).max(128);
const relPath = z.string().min(1).max(4096);
const bytes = z.number().int().nonnegative();

const poolDefinition = z.object({
  id,
  name: z.string(),
  type: z.string(),
  config: z.record(z.string(), z.unknown()),
  contentTypes: z.array(z.enum(POOL_CONTENT_TYPES)),
  shared: z.boolean(),
});
export type ProtocolPool = z.infer<typeof poolDefinition>;

const poolReport = z.object({
  poolId: id,
  status: z.enum(POOL_NODE_STATUSES),
  mountPath: z.string().nullable(),
  capacityBytes: bytes.nullable(),
  availableBytes: bytes.nullable(),
  reason: z.string().nullable(),
});
export type PoolReport = z.infer<typeof poolReport>;

const scannedFile = z.object({
  relPath,
  kind: z.enum(IMAGE_KINDS),
  format: z.enum(IMAGE_FORMATS).nullable(),
  sizeBytes: bytes,
  modifiedAt: z.string(),
  name: z.string().optional(),
  os: z
    .object({
      family: z.enum(OS_FAMILIES),
      distribution: z.string().nullable(),
      version: z.string().nullable(),
      arch: z.string().nullable(),
    })
    .partial()
    .optional(),
  labels: z.record(z.string(), z.string()).optional(),
});
export type ScannedFile = z.infer<typeof scannedFile>;

const errorBody = z.object({ code: z.string().min(1), message: z.string() });

const checksum = z.object({ algorithm: z.enum(CHECKSUM_ALGORITHMS), value: z.string() });

/** Operations the control plane asks a node to perform; the node answers with `response`. */
export const nodeRequestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('pool.scan'), poolId: id, content: z.enum(POOL_CONTENT_TYPES) }),
  z.object({
    op: z.literal('image.download'),
    imageId: id,
    poolId: id,
    relPath,
    sourceUrl: z.string().url(),
    checksum: checksum.nullable(),
    checksumUrl: z.string().url().nullable(),
  }),
  z.object({ op: z.literal('image.cancel'), imageId: id }),
  z.object({ op: z.literal('image.remove'), poolId: id, relPath }),
  z.object({ op: z.literal('file.stat'), poolId: id, relPath }),
  z.object({ op: z.literal('vm.create'), vm: z.record(z.string(), z.unknown()) }),
  z.object({ op: z.literal('vm.start'), name: z.string() }),
  z.object({ op: z.literal('vm.stop'), name: z.string(), force: z.boolean().default(false) }),
  z.object({ op: z.literal('vm.delete'), name: z.string() }),
  z.object({ op: z.literal('vm.state'), name: z.string() }),
]);
export type NodeRequest = z.infer<typeof nodeRequestSchema>;

/** Messages from the control plane to a node. */
export const controlMessageSchema = z.discriminatedUnion('type', [
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('welcome'), nodeId: id, serverTime: z.string() }),
  /** The node's full desired pool set. Sent on every (re)connect and on any pool change. */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('pools.desired'),
    generation: z.number().int().nonnegative(),
    pools: z.array(poolDefinition),
  }),
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('request'), requestId: id, request: nodeRequestSchema }),
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('error'), error: errorBody }),
]);
export type ControlMessage = z.infer<typeof controlMessageSchema>;

/** Messages from a node to the control plane. */
export const nodeMessageSchema = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('hello'),
    nodeId: id,
    hostname: z.string().min(1),
    agentVersion: z.string(),
    capabilities: z.record(z.string(), z.unknown()).default({}),
  }),
  /** Per-pool state after reconciling generation `generation` (the node's acknowledgement). */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('pools.state'),
    generation: z.number().int().nonnegative(),
    pools: z.array(poolReport),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('scan.result'),
    poolId: id,
    content: z.enum(POOL_CONTENT_TYPES),
    /** Every file of that content type now in the pool: rows for files not listed become missing. */
    files: z.array(scannedFile),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('image.progress'),
    imageId: id,
    bytesDone: bytes,
    bytesTotal: bytes.nullable(),
    bytesPerSecond: z.number().nonnegative().nullable(),
    etaSeconds: z.number().nonnegative().nullable(),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('response'),
    requestId: id,
    result: z.unknown().optional(),
    error: errorBody.optional(),
  }),
]);
export type NodeMessage = z.infer<typeof nodeMessageSchema>;

function parseMessage<T>(schema: z.ZodType<T>, data: unknown, side: string): T {
  let value = data;
  if (typeof data === 'string') {
    try {
      value = JSON.parse(data);
    } catch {
      throw new QuantixError(ErrorCode.PROTOCOL_INVALID_MESSAGE, `${side} message is not JSON`);
    }
  }
  const version = (value as { v?: unknown } | null)?.v;
  if (version !== PROTOCOL_VERSION) {
    throw new QuantixError(
      ErrorCode.PROTOCOL_VERSION,
      `${side} message speaks protocol version ${String(version)}; this side speaks ${PROTOCOL_VERSION}`,
      { details: { version } },
    );
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new QuantixError(ErrorCode.PROTOCOL_INVALID_MESSAGE, `Invalid ${side} message: ${issues}`, {
      details: { type: (value as { type?: unknown }).type },
    });
  }
  return result.data;
}

/** Parses and validates a frame received by a node. */
export function parseControlMessage(data: unknown): ControlMessage {
  return parseMessage(controlMessageSchema, data, 'control-plane');
}

/** Parses and validates a frame received by the control plane. */
export function parseNodeMessage(data: unknown): NodeMessage {
  return parseMessage(nodeMessageSchema, data, 'node');
}
