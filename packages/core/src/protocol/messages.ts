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

/**
 * Limits on what a peer may send. One node must not be able to starve the control plane, so
 * the control plane refuses a node frame larger than MAX_NODE_MESSAGE_BYTES (ws closes the
 * socket with 1009), and every string and array in every message has a bound: nothing a node
 * says can make a row, an event or an API answer grow without limit. A node keeps its own
 * free text (reasons, error messages) within bounds with `truncateText`.
 */
export const PROTOCOL_LIMITS = {
  /** Largest node → control plane frame, in bytes (ws `maxPayload`). */
  maxNodeMessageBytes: 1024 * 1024,
  /** Ids: node, pool, image, request, scan. */
  id: 128,
  /** Names: pools, hosts, files' display names, VM names. */
  name: 255,
  /** Pool-relative paths and mount paths. */
  path: 4096,
  /** Free text: a pool state's reason, an error's message. */
  reason: 1024,
  /** Short tokens: versions, error codes, OS fields, timestamps. */
  short: 64,
  url: 8192,
  /** Any JSON value passed through (pool config, capabilities, a response's result), serialized. */
  jsonBytes: 64 * 1024,
  /** Pools in one push or one report. */
  pools: 1024,
  /** Files in one scan.result message (a larger scan comes in parts). */
  scanFilesPerMessage: 10_000,
  /** Labels on one file. */
  labels: 64,
  /** Downloads a node reports in its hello. */
  downloads: 256,
} as const;

/**
 * WebSocket close codes the control plane ends a node's connection with (ws itself closes a
 * frame over `maxNodeMessageBytes` with 1009). A node redials after any of them.
 */
export const NODE_CLOSE_CODES = {
  /** No hello within the time allowed. */
  helloTimeout: 4000,
  /** The node speaks another protocol version. */
  protocolVersion: 4001,
  /** The first message was not a hello for the node the token belongs to. */
  helloRequired: 4002,
  /** A newer connection of the same node took over. */
  replaced: 4003,
  /**
   * The node sent more than its queue holds (an `error` with NODE_BUSY precedes the close).
   * Reading from a node pauses long before that, so only a node that ignores TCP backpressure
   * gets here.
   */
  busy: 4008,
} as const;

/** Cuts free text to `max` characters (an ellipsis marks the cut), so it passes the protocol's limits. */
export function truncateText(text: string, max: number = PROTOCOL_LIMITS.reason): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const id = z.string().min(1).max(PROTOCOL_LIMITS.id);
const relPath = z.string().min(1).max(PROTOCOL_LIMITS.path);
const bytes = z.number().int().nonnegative();
const name = z.string().max(PROTOCOL_LIMITS.name);
const short = z.string().max(PROTOCOL_LIMITS.short);
const reason = z.string().max(PROTOCOL_LIMITS.reason);
const url = z.string().max(PROTOCOL_LIMITS.url).url();

/** Any JSON value, at most `maxBytes` once serialized (the frame limit alone would allow 1 MiB). */
function boundedJson<T extends z.ZodType>(schema: T, maxBytes: number = PROTOCOL_LIMITS.jsonBytes) {
  return schema.refine((value) => (JSON.stringify(value) ?? '').length <= maxBytes, {
    message: `must be at most ${maxBytes} bytes as JSON`,
  });
}
const jsonRecord = boundedJson(z.record(z.string().max(PROTOCOL_LIMITS.name), z.unknown()));

const poolDefinition = z.object({
  id,
  name,
  type: short,
  config: jsonRecord,
  contentTypes: z.array(z.enum(POOL_CONTENT_TYPES)).max(POOL_CONTENT_TYPES.length),
  shared: z.boolean(),
});
export type ProtocolPool = z.infer<typeof poolDefinition>;

const poolReport = z.object({
  poolId: id,
  status: z.enum(POOL_NODE_STATUSES),
  mountPath: z.string().max(PROTOCOL_LIMITS.path).nullable(),
  capacityBytes: bytes.nullable(),
  availableBytes: bytes.nullable(),
  reason: reason.nullable(),
});
export type PoolReport = z.infer<typeof poolReport>;

const scannedFile = z.object({
  relPath,
  kind: z.enum(IMAGE_KINDS),
  format: z.enum(IMAGE_FORMATS).nullable(),
  sizeBytes: bytes,
  modifiedAt: short,
  name: name.optional(),
  os: z
    .object({
      family: z.enum(OS_FAMILIES),
      distribution: short.nullable(),
      version: short.nullable(),
      arch: short.nullable(),
      shortId: z.string().max(100).nullable(),
      confidence: z.enum(OS_CONFIDENCES).nullable(),
      osinfoVersion: short.nullable(),
    })
    .partial()
    .optional(),
  labels: z
    .record(z.string().max(128), z.string().max(512))
    .refine((labels) => Object.keys(labels).length <= PROTOCOL_LIMITS.labels, {
      message: `at most ${PROTOCOL_LIMITS.labels} labels`,
    })
    .optional(),
});
export type ScannedFile = z.infer<typeof scannedFile>;

const errorBody = z.object({ code: short.min(1), message: reason });

const checksum = z.object({ algorithm: z.enum(CHECKSUM_ALGORITHMS), value: z.string().max(256) });

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
        sshAuthorizedKeys: z
          .array(z.string().max(16 * 1024))
          .max(64)
          .default([]),
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
    sourceUrl: url,
    checksum: checksum.nullable(),
    checksumUrl: url.nullable(),
  }),
  /*
   * image.download answers imageDownloadResultSchema. A second image.download for an image the
   * node is still fetching into the same place attaches to that download (a control plane that
   * restarted asks again); one that finished lately is answered from its result, without
   * fetching again.
   */
  z.object({ op: z.literal('image.cancel'), imageId: id }),
  z.object({ op: z.literal('image.remove'), poolId: id, relPath }),
  /** Answer: `{ exists: boolean, sizeBytes: number | null }`. */
  z.object({ op: z.literal('file.stat'), poolId: id, relPath }),
  /** Answer: `{ name, uuid, state }` once the domain runs. Files made for it are removed on failure. */
  z.object({ op: z.literal('vm.create'), vm: vmSpecSchema }),
  z.object({ op: z.literal('vm.start'), name }),
  z.object({ op: z.literal('vm.stop'), name, force: z.boolean().default(false) }),
  z.object({ op: z.literal('vm.delete'), name }),
  z.object({ op: z.literal('vm.state'), name }),
]);
export type NodeRequest = z.infer<typeof nodeRequestSchema>;

/** What a node answers to image.download once the file is complete and verified. */
export const imageDownloadResultSchema = z.object({
  sizeBytes: bytes,
  checksum: checksum.optional(),
  format: z.enum(IMAGE_FORMATS).nullable().optional(),
  virtualSizeBytes: bytes.nullable().optional(),
  bytesTransferred: bytes.optional(),
  resumed: z.boolean().optional(),
});
export type ImageDownloadResult = z.infer<typeof imageDownloadResultSchema>;

/**
 * A download a node has in hand, reported in its hello so that a control plane that restarted
 * adopts it: `running` is still fetching (ask for it again to attach), `done` finished and was
 * verified (its result is applied to the image, whatever happened to the request that started it).
 */
const helloDownload = z.object({
  imageId: id,
  poolId: id,
  relPath,
  state: z.enum(['running', 'done']),
  bytesDone: bytes.optional(),
  result: imageDownloadResultSchema.optional(),
});
export type HelloDownload = z.infer<typeof helloDownload>;

/** Messages from the control plane to a node. */
export const controlMessageSchema = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('welcome'),
    nodeId: id,
    serverTime: short,
    /** The largest frame the control plane takes from this node (absent: an older control plane, no stated limit). */
    maxMessageBytes: z.number().int().positive().optional(),
  }),
  /** The node's full desired pool set. Sent on every (re)connect and on any pool change. */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('pools.desired'),
    generation: z.number().int().nonnegative(),
    pools: z.array(poolDefinition).max(PROTOCOL_LIMITS.pools),
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
    hostname: name.min(1),
    agentVersion: short,
    capabilities: jsonRecord.default({}),
    /** Downloads this node has in hand (absent: an older node, or none). */
    downloads: z.array(helloDownload).max(PROTOCOL_LIMITS.downloads).optional(),
  }),
  /**
   * Per-pool state after reconciling generation `generation` (the node's acknowledgement), with
   * every pool of the push; between pushes a node reports only the pools whose state changed.
   * A generation newer than the control plane's current one is refused.
   */
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('pools.state'),
    generation: z.number().int().nonnegative(),
    pools: z.array(poolReport).max(PROTOCOL_LIMITS.pools),
  }),
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    type: z.literal('scan.result'),
    poolId: id,
    content: z.enum(POOL_CONTENT_TYPES),
    /**
     * Every file of that content type now in the pool: rows for files not listed become missing.
     * A scan larger than one frame comes in parts with the same `scanId`, numbered from 0; the
     * part with `final: true` closes it, and the files of all its parts are the scan.
     */
    files: z.array(scannedFile).max(PROTOCOL_LIMITS.scanFilesPerMessage),
    scanId: id.optional(),
    part: z.number().int().nonnegative().max(100_000).optional(),
    final: z.boolean().optional(),
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
    result: boundedJson(z.unknown()).optional(),
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
    // The version is the peer's text: quoted and cut short, never echoed whole.
    const shown = truncateText(JSON.stringify(version) ?? 'none', 32);
    throw new QuantixError(
      ErrorCode.PROTOCOL_VERSION,
      `${side} message speaks protocol version ${shown}; this side speaks ${PROTOCOL_VERSION}`,
      { details: { version: shown } },
    );
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    const type = (value as { type?: unknown }).type;
    throw new QuantixError(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
      truncateText(`Invalid ${side} message: ${issues}`, PROTOCOL_LIMITS.reason),
      { details: { type: typeof type === 'string' ? truncateText(type, PROTOCOL_LIMITS.short) : null } },
    );
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
