import { z } from 'zod';
import { CHECKSUM_ALGORITHMS, IMAGE_FORMATS, IMAGE_KINDS, OS_CONFIDENCES, OS_FAMILIES } from '../domain/image.js';
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
      shortId: z.string().max(100).nullable(),
      confidence: z.enum(OS_CONFIDENCES).nullable(),
      osinfoVersion: z.string().max(64).nullable(),
    })
    .partial()
    .optional(),
  labels: z.record(z.string(), z.string()).optional(),
});
export type ScannedFile = z.infer<typeof scannedFile>;

const errorBody = z.object({ code: z.string().min(1), message: z.string() });

const checksum = z.object({ algorithm: z.enum(CHECKSUM_ALGORITHMS), value: z.string() });

const location = z.object({ poolId: id, relPath });

/**
 * A VM for a node to create. Every file is a pool location that the node resolves through its
 * own storage backend (confined to the pool root); the control plane never sends node paths.
 */
export const vmSpecSchema = z.object({
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
  cpu: z.number().int().min(1),
  memoryMiB: z.number().int().min(16),
  firmware: z.enum(['bios', 'uefi']),
  boot: z.discriminatedUnion('kind', [
    z.object({
      kind: z.literal('cloud'),
      /** The ready base image; the VM gets a qcow2 overlay on it at `disk`. */
      image: location,
      disk: location.extend({ sizeGiB: z.number().int().min(1) }),
      /** Where to write the NoCloud seed ISO. */
      seed: location,
      cloudInit: z.object({
        hostname: z.string().min(1).max(63),
        user: z.string().min(1).max(32).nullable(),
        sshAuthorizedKeys: z.array(z.string()).default([]),
      }),
    }),
    z.object({
      kind: z.literal('iso'),
      iso: location,
      disk: location.extend({ sizeGiB: z.number().int().min(1) }),
    }),
  ]),
});
export type VmSpec = z.infer<typeof vmSpecSchema>;

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
  /* image.download answers `{ sizeBytes, checksum, format, virtualSizeBytes, bytesTransferred, resumed }`. */
  z.object({ op: z.literal('image.cancel'), imageId: id }),
  z.object({ op: z.literal('image.remove'), poolId: id, relPath }),
  /** Answer: `{ exists: boolean, sizeBytes: number | null }`. */
  z.object({ op: z.literal('file.stat'), poolId: id, relPath }),
  /** Answer: `{ name, uuid, state }` once the domain runs. Files made for it are removed on failure. */
  z.object({ op: z.literal('vm.create'), vm: vmSpecSchema }),
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
    /** Set when the download moves on: verifying means every byte arrived and is being checked. */
    phase: z.enum(['downloading', 'verifying']).optional(),
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
