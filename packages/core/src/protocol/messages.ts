import { z } from 'zod';
import { IMAGE_IMPORT_TARGETS } from '../contracts/converter.js';
import { CONSOLE_TYPES, DOMAIN_STATE_REASONS, DOMAIN_STATES } from '../contracts/hypervisor.js';
import {
  CHECKSUM_ALGORITHMS,
  FIRMWARE_KINDS,
  IMAGE_FORMATS,
  IMAGE_KINDS,
  IMAGE_PROGRESS_STAGES,
  OS_CONFIDENCES,
  OS_FAMILIES,
} from '../domain/image.js';
import { hostNetworkSchema, vmAddressSchema, vmNicSchema } from '../domain/network.js';
import { POOL_CONTENT_TYPES, POOL_NODE_STATUSES } from '../domain/pool.js';
import { ErrorCode, QuantixError } from '../errors.js';

/**
 * The control-plane ⇄ node protocol. The node daemon dials the control plane and keeps one
 * authenticated connection; every frame is one JSON message `{ v, type, ... }`, validated by
 * these schemas on both sides. `v` is the protocol version the message is written in.
 *
 * Versions are negotiated, so that nodes and control planes upgrade one at a time: a node's
 * hello says the range of versions it speaks (`protocol: { min, max }`), the control plane picks
 * the highest version both speak and says it in its welcome, and both write that version from
 * then on. A node with no version in common is closed (PROTOCOL_VERSION, close code 4001) with a
 * reason naming both ranges. A version adds optional fields only, so a message of an older
 * version still reads.
 *
 * Requests that expect an answer carry a `requestId`; the answer is `response` with the same
 * id and either `result` or `error` ({ code, message } — a QuantixError code).
 */
export const PROTOCOL_VERSIONS = {
  /** The oldest version this release speaks (the first release's). */
  min: 1,
  /**
   * The newest: 2 adds version negotiation, typed operation results and checksumAlgorithm; 3 the
   * operations in OPERATION_SINCE_VERSION and delta scans (pool.scan `since`, scan.delta); 4 pools
   * in the hello (a reconnecting node says the pools it holds, and is not pushed them again); 5
   * vm.states (the control plane keeps its records of VMs to what the hypervisor says); 6
   * vm.eject (a VM's ISO taken out of its CD-ROM drive); 7 vm.resize (a stopped VM's CPUs and
   * memory) and vm.insert (an ISO put into a VM's empty CD-ROM drive); 8 source.check (a download's
   * source judged by the node before anything is recorded) and image.remove `importOriginal`; 9
   * file.hash (a pool file's checksum read on its node: what `images verify` records or compares).
   */
  max: 9,
} as const;
/** The version this release writes before a version was agreed (its hello), and prefers. */
export const PROTOCOL_VERSION = PROTOCOL_VERSIONS.max;

/** The version two ranges have in common (the highest), or null when they share none. */
export function agreeProtocolVersion(
  theirs: { min: number; max: number },
  ours: { min: number; max: number } = PROTOCOL_VERSIONS,
): number | null {
  const version = Math.min(theirs.max, ours.max);
  return version >= Math.max(theirs.min, ours.min) ? version : null;
}

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
  /** Networks and bridges one node reports. */
  networks: 256,
  /** Pools in one push or one report. */
  pools: 1024,
  /** Files in one scan.result message (a larger scan comes in parts). */
  scanFilesPerMessage: 10_000,
  /** Labels on one file. */
  labels: 64,
  /** Downloads a node reports in its hello. */
  downloads: 256,
  /** VMs one vm.states request asks about. */
  vmsPerRequest: 2048,
  /** CD-ROM drives of one VM (a domain's definition allows no more). */
  cdroms: 8,
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
  /** The node was removed (its record deleted): its token opens nothing any more. */
  removed: 4004,
  /** The node was given a new token: the one this connection was opened with opens nothing any more. */
  tokenReplaced: 4005,
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
const version = z.number().int().positive().max(1_000);
const versionRange = z
  .object({ min: version, max: version })
  .refine((range) => range.min <= range.max, 'min must not be above max');
const relPath = z.string().min(1).max(PROTOCOL_LIMITS.path);
const bytes = z.number().int().nonnegative();
const name = z.string().max(PROTOCOL_LIMITS.name);
const short = z.string().max(PROTOCOL_LIMITS.short);
const reason = z.string().max(PROTOCOL_LIMITS.reason);
/** The instants a file's modification time may name: years 1 to 9999, what the database stores. */
const FILE_TIME_MS = { min: Date.parse('0001-01-01T00:00:00.000Z'), max: Date.parse('9999-12-31T23:59:59.999Z') };
/** Whether an instant can be sent as a file's modification time (`toISOString` of it is ISO 8601 proper). */
export const isSendableFileTime = (ms: number): boolean => ms >= FILE_TIME_MS.min && ms <= FILE_TIME_MS.max;
/** A file's modification time as `toISOString` writes it (any ISO 8601 offset is read too). */
const fileTime = z.iso
  .datetime({ offset: true })
  .refine((text) => isSendableFileTime(Date.parse(text)), 'a time from year 1 to 9999');
const url = z.string().max(PROTOCOL_LIMITS.url).url();
/**
 * The replica a node dials back to for a console or file relay, when it is not the one the node
 * is connected to (the request was carried there from the replica whose client waits): that
 * replica's own URL, an http(s) origin.
 */
const relayUrl = url.refine((value) => /^https?:\/\/[^/?#@]+\/?$/.test(value), 'an http(s) origin');
const path = z.string().min(1).max(PROTOCOL_LIMITS.path);

/** Any JSON value, at most `maxBytes` once serialized (the frame limit alone would allow 1 MiB). */
function boundedJson<T extends z.ZodType>(schema: T, maxBytes: number = PROTOCOL_LIMITS.jsonBytes) {
  return schema.refine((value) => (JSON.stringify(value) ?? '').length <= maxBytes, {
    message: `must be at most ${maxBytes} bytes as JSON`,
  });
}
const jsonRecord = boundedJson(z.record(z.string().max(PROTOCOL_LIMITS.name), z.unknown()));

/** A scan fingerprint (scanFingerprint): a file count and a 48-bit sum, `<count>-<hex>`. */
const scanFingerprintText = z.string().regex(/^[0-9]{1,9}-[0-9a-f]{1,12}$/);

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
  modifiedAt: fileTime,
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
  /** The firmware the medium boots with when it boots with only one (absent: an older node, or any). */
  firmware: z.enum(FIRMWARE_KINDS).optional(),
});
export type ScannedFile = z.infer<typeof scannedFile>;

/**
 * A path a scan did not look into: a directory it could not read (EACCES, EIO…), one deeper than
 * the pool's maxDepth, or an entry it refused (a symbolic link, which may lead out of the pool).
 * What lies under it is unknown, not gone: its rows are left as they are.
 */
const scanSkipped = z.object({ relPath, reason });
export type ScanSkipped = z.infer<typeof scanSkipped>;

/** A file that is there but is not what its content type says (a text file named .iso): its ISO_* code. */
const scanInvalid = z.object({ relPath, code: short.min(1), message: reason });
export type ScanInvalid = z.infer<typeof scanInvalid>;

/** A failure: its code, its message, and whether trying again can help (absent: the code decides). */
const errorBody = z.object({ code: short.min(1), message: reason, retryable: z.boolean().optional() });

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
  /** The guest OS as libosinfo names it ("http://ubuntu.com/ubuntu/24.04"), for the domain's metadata. */
  osinfoId: z.string().max(256).optional(),
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
  /** Its NICs, MACs included (absent from an older control plane: none). */
  nics: z.array(vmNicSchema).max(16).default([]),
});
export type VmSpec = z.infer<typeof vmSpecSchema>;

/** What image.download asks (and image.import, which adds how to convert). */
const imageDownloadRequest = z.object({
  imageId: id,
  poolId: id,
  relPath,
  sourceUrl: url,
  checksum: checksum.nullable(),
  checksumUrl: url.nullable(),
  /** Which line of a checksum file to use when it lists several algorithms (absent: the strongest). */
  checksumAlgorithm: z.enum(CHECKSUM_ALGORITHMS).nullable().optional(),
});

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

/** What an OVF descriptor said (an imported OVA): what pre-fills a VM made from the image. */
const ovfFacts = z.object({
  name: name.nullable(),
  cpuCount: z.number().int().positive().max(4096).nullable(),
  memoryMiB: z.number().int().positive().nullable(),
  firmware: z.enum(['bios', 'uefi']).nullable(),
  disks: z.array(z.object({ diskId: short, fileName: name, capacityBytes: bytes.nullable() })).max(64),
});

/** What a node answers to image.import: the converted image (the first disk of an OVA) and what it came from. */
export const imageImportResultSchema = imageDownloadResultSchema.extend({
  /** What the content was, as qemu-img names it ('vpc' is VHD). */
  sourceFormat: short,
  compression: short.nullable(),
  ovf: ovfFacts.nullable(),
  /** An OVA's further disks, converted beside the first. */
  extraDisks: z
    .array(z.object({ relPath, sizeBytes: bytes, virtualSizeBytes: bytes, checksum }))
    .max(63)
    .default([]),
});
export type ImageImportResultMessage = z.infer<typeof imageImportResultSchema>;

const domainState = z.enum(DOMAIN_STATES);

/**
 * Every operation the control plane asks of a node: its request and the result the node
 * answers with. One map, read by both sides: `hub.request(op)` is typed by it and checks the
 * result when it arrives; the node agent's handlers are typed by it, so neither side can drift.
 */
export const NODE_OPERATIONS = {
  /**
   * Lists the pool's files of one content type, sends them as scan.result, answers with counts.
   * With `since` (the fingerprint of the state the control plane holds for this node's pool), a
   * node whose last report of the pool had that fingerprint sends only the changes, as scan.delta.
   */
  'pool.scan': {
    request: z.object({
      poolId: id,
      content: z.enum(POOL_CONTENT_TYPES),
      /** Absent: an older control plane, or one that holds no state it trusts: a full scan.result. */
      since: scanFingerprintText.optional(),
    }),
    result: z.object({
      poolId: id,
      content: z.enum(POOL_CONTENT_TYPES),
      files: z.number().int().nonnegative(),
      skipped: z.array(z.object({ relPath, reason })).max(PROTOCOL_LIMITS.scanFilesPerMessage),
      /** Files that are there but not what the content type says (a text file named .iso), left out; absent from an older node. */
      invalid: z.array(scanInvalid).max(PROTOCOL_LIMITS.scanFilesPerMessage).optional(),
      /** True when the node sent a scan.delta rather than a full scan.result. */
      delta: z.boolean().optional(),
    }),
  },
  /**
   * Fetches a file into a pool, verified. A second image.download for an image the node is still
   * fetching into the same place attaches to that download (a control plane that restarted asks
   * again); one that finished lately is answered from its result, without fetching again.
   */
  'image.download': {
    request: imageDownloadRequest,
    result: imageDownloadResultSchema,
  },
  /**
   * image.download, then an import of what arrived: the file is fetched beside `relPath`,
   * checked (compression by magic bytes, no reference to other files, content matching its
   * claimed format, a bounded virtual size), converted with qemu-img to `targetFormat` at
   * `relPath`, and the original removed unless `keepOriginal` (then it stays at `<relPath>.orig`).
   * Progress comes as image.progress, with `stage` once the bytes are in.
   */
  'image.import': {
    request: imageDownloadRequest.extend({
      targetFormat: z.enum(IMAGE_IMPORT_TARGETS),
      /** What the source claims to be, in qemu-img's names (absent: what its URL's file name claims). */
      claimedFormat: short.nullable().optional(),
      keepOriginal: z.boolean().default(false),
    }),
    result: imageImportResultSchema,
  },
  /**
   * Whether the node would fetch from a source (and its checksum file): a fetcher for its scheme,
   * and the node's source policy (scheme, host, port, the addresses the host resolves to), judged
   * without requesting anything. Answers the refusal a download would fail with.
   */
  'source.check': {
    request: z.object({ sourceUrl: url, checksumUrl: url.nullable() }),
    result: z.object({ allowed: z.literal(true) }),
  },
  'image.cancel': { request: z.object({ imageId: id }), result: z.object({ cancelled: z.boolean() }) },
  /**
   * Removes an image's file and what downloads toward it left to resume from. With
   * `importOriginal` (version 8) the original an import downloaded beside it (`<relPath>.orig`,
   * kept by a failed or keepOriginal import) goes too.
   */
  'image.remove': {
    request: z.object({ poolId: id, relPath, importOriginal: z.boolean().optional() }),
    result: z.object({ removed: z.boolean() }),
  },
  'file.stat': {
    request: z.object({ poolId: id, relPath }),
    result: z.object({
      exists: z.boolean(),
      sizeBytes: bytes.nullable(),
      /**
       * What the pool's file system has free, as the pool's backend reads it now (null when it
       * cannot tell; absent from nodes before it was added): a file that will not fit is refused
       * before its bytes are sent.
       */
      availableBytes: bytes.nullable().optional(),
    }),
  },
  /**
   * Hashes a file of a pool (resolved by the pool's backend, so it cannot leave the pool), for
   * what the control plane records or compares as the image's checksum: IMAGE_FILE_MISSING when
   * there is no such file, IMAGE_FILE_CHANGED when it changed while it was read.
   */
  'file.hash': {
    request: z.object({ poolId: id, relPath, algorithm: z.enum(CHECKSUM_ALGORITHMS) }),
    result: z.object({
      sizeBytes: bytes,
      checksum,
      /** Null for a time the protocol cannot carry (year 10,000). */
      modifiedAt: fileTime.nullable(),
    }),
  },
  /** Builds and starts a VM; files made for it are removed when it fails. */
  'vm.create': {
    request: z.object({ vm: vmSpecSchema }),
    result: z.object({ name, uuid: short, state: domainState }),
  },
  /** Starts a shut-off domain, lets a paused one run on; a running one is left as it is. */
  'vm.start': { request: z.object({ name }), result: z.object({ name, state: domainState }) },
  'vm.stop': {
    request: z.object({ name, force: z.boolean().default(false) }),
    result: z.object({ name, state: domainState }),
  },
  /** An ACPI reboot: the guest restarts itself; the answer is the state right after asking. */
  'vm.reboot': { request: z.object({ name }), result: z.object({ name, state: domainState }) },
  'vm.delete': {
    request: z.object({ name }),
    result: z.object({ removedFiles: z.array(path).max(PROTOCOL_LIMITS.pools) }),
  },
  'vm.state': { request: z.object({ name }), result: z.object({ name, state: domainState }) },
  /**
   * Empties the CD-ROM drives of a VM that hold these files of pools (each resolved by its pool's
   * backend), live and in its definition: the drives stay, empty, and the VM boots from its disk.
   * `ejected`: the drives emptied (none when no drive held them: ejected already).
   */
  'vm.eject': {
    request: z.object({ name, cdroms: z.array(z.object({ poolId: id, relPath })).max(PROTOCOL_LIMITS.cdroms) }),
    result: z.object({ name, ejected: z.array(short).max(PROTOCOL_LIMITS.cdroms) }),
  },
  /**
   * Puts a file of a pool (resolved by the pool's backend) into the VM's first empty CD-ROM
   * drive, live and in its definition; `target`: that drive (or the one holding it already).
   */
  'vm.insert': {
    request: z.object({ name, cdrom: z.object({ poolId: id, relPath }) }),
    result: z.object({ name, target: short }),
  },
  /**
   * Sets a shut-off domain's vCPUs and memory in its definition (INVALID_STATE while it runs or
   * is paused); they take effect at its next start. The answer: what its definition now says.
   */
  'vm.resize': {
    request: z.object({
      name,
      cpu: z.number().int().min(1).max(1024).optional(),
      memoryMiB: z
        .number()
        .int()
        .min(16)
        .max(16 * 1024 * 1024)
        .optional(),
    }),
    result: z.object({ name, cpu: z.number().int(), memoryMiB: z.number().int() }),
  },
  /**
   * The states of many domains at once, in the order asked; null for a name the node has no
   * domain of. What the control plane checks its records of VMs against (a guest that powered
   * itself off, a domain stopped, started or removed outside Quantix), with why where that is
   * something to act on (a guest QEMU paused because its disk could not be written).
   */
  'vm.states': {
    request: z.object({ names: z.array(name).max(PROTOCOL_LIMITS.vmsPerRequest) }),
    result: z.object({
      states: z
        .array(
          z.object({
            name,
            state: domainState.nullable(),
            // A reason a later version names reads as none here, not as a broken answer.
            reason: z.enum(DOMAIN_STATE_REASONS).optional().catch(undefined),
          }),
        )
        .max(PROTOCOL_LIMITS.vmsPerRequest),
    }),
  },
  /**
   * Opens a VM's console and relays its bytes over a WebSocket of its own, which the node dials
   * at NODE_CONSOLE_PATH/{sessionId} with its node token (binary frames; the node protocol's
   * connection never carries console bytes). Answered once the console is open and the
   * relay dialled; CONSOLE_UNAVAILABLE when the VM has no such console or is not running.
   * `relayUrl`: see relayUrl below.
   */
  'console.open': {
    request: z.object({ sessionId: id, name, type: z.enum(CONSOLE_TYPES), relayUrl: relayUrl.optional() }),
    result: z.object({ sessionId: id, type: z.enum(CONSOLE_TYPES) }),
  },
  /**
   * Streams bytes `start`..`end` (inclusive) of a file of a pool to the control plane over a
   * connection of its own: an HTTP POST the node makes to NODE_EXPORT_PATH/{sessionId} with its
   * node token, the bytes as its body (never through the protocol's connection). The path is resolved by the
   * pool's backend, so it cannot leave the pool. Answered once the file is open and the channel
   * dialled: IMAGE_FILE_MISSING when there is no such file, IMAGE_FILE_CHANGED when its size is
   * not `expectedSize` (the row the control plane holds is stale), RANGE_NOT_SATISFIABLE for a
   * range outside the file. `relayUrl`: see relayUrl below.
   */
  'file.export': {
    request: z.object({
      sessionId: id,
      poolId: id,
      relPath,
      start: bytes,
      end: bytes,
      expectedSize: bytes,
      relayUrl: relayUrl.optional(),
    }),
    result: z.object({ sessionId: id, sizeBytes: bytes }),
  },
  /**
   * Copies a file of one pool into another pool (or another place of the same pool) on this node:
   * both paths resolved by their pools' backends (neither can leave its pool), the bytes cloned
   * where the file system can (copy_file_range / reflink) into a partial file beside the target,
   * hashed, checked against `checksum`, synced and renamed into place. A mismatch removes the
   * partial file and is CHECKSUM_MISMATCH; an existing target is ALREADY_EXISTS.
   */
  'file.copy': {
    request: z.object({
      imageId: id,
      sourcePoolId: id,
      sourceRelPath: relPath,
      poolId: id,
      relPath,
      checksum,
    }),
    result: z.object({ sizeBytes: bytes, checksum }),
  },
  /** The node's libvirt networks and host bridges: what a VM's NIC can plug into there. */
  'node.networks': {
    // Loose: an empty strict object's input type is { [k: string]: never }, which no request with `op` fits.
    request: z.looseObject({}),
    result: z.object({ networks: z.array(hostNetworkSchema).max(PROTOCOL_LIMITS.networks) }),
  },
  /** A VM's addresses: libvirt's DHCP leases, else the guest agent when the guest runs one. */
  'vm.addresses': {
    request: z.object({ name }),
    result: z.object({ name, addresses: z.array(vmAddressSchema).max(PROTOCOL_LIMITS.networks * 8) }),
  },
} as const;

/**
 * The protocol version that first carries an operation (absent: every version). A node that
 * agreed an older version is not asked it: the control plane answers UNSUPPORTED_OPERATION,
 * naming the upgrade, instead of sending a request the node cannot read.
 */
export const OPERATION_SINCE_VERSION: Partial<Record<keyof typeof NODE_OPERATIONS, number>> = {
  'vm.reboot': 3,
  'console.open': 3,
  'node.networks': 3,
  'vm.addresses': 3,
  'image.import': 3,
  'file.export': 3,
  'file.copy': 3,
  'vm.states': 5,
  'vm.eject': 6,
  'vm.resize': 7,
  'vm.insert': 7,
  'source.check': 8,
  'file.hash': 9,
};

/** The version delta scans (pool.scan `since`, answered by scan.delta) need. */
export const DELTA_SCAN_SINCE_VERSION = 3;

/**
 * The version from which a welcome answers a hello's `pools`: with `poolsCurrent` when they are
 * the node's desired set (nothing is pushed), else with the usual push.
 */
export const POOLS_IN_HELLO_SINCE_VERSION = 4;

/** Where a node dials, under the API prefix, to relay a console opened by console.open. */
export const NODE_CONSOLE_PATH = '/node-consoles';

/** Where a node dials, under the API prefix, to stream a file asked for by file.export. */
export const NODE_EXPORT_PATH = '/node-exports';

export type NodeOperation = keyof typeof NODE_OPERATIONS;
/** The request of one operation, as the control plane writes it (defaults may be left out). */
export type NodeRequestOf<Op extends NodeOperation> = { op: Op } & z.input<(typeof NODE_OPERATIONS)[Op]['request']>;
/** The result a node answers one operation with, as checked on arrival. */
export type NodeResultOf<Op extends NodeOperation> = z.output<(typeof NODE_OPERATIONS)[Op]['result']>;

/** Any operation's request, after defaults (what a node receives). */
export type NodeRequest = {
  [Op in NodeOperation]: { op: Op } & z.output<(typeof NODE_OPERATIONS)[Op]['request']>;
}[NodeOperation];

/** Operations the control plane asks a node to perform; the node answers with `response`. */
export const nodeRequestSchema = z.discriminatedUnion(
  'op',
  Object.entries(NODE_OPERATIONS).map(([op, { request }]) => request.extend({ op: z.literal(op) })) as unknown as [
    z.ZodObject<{ op: z.ZodLiteral<NodeOperation> }>,
    ...z.ZodObject<{ op: z.ZodLiteral<NodeOperation> }>[],
  ],
) as unknown as z.ZodType<NodeRequest, { op: NodeOperation }>;

/** Checks a node's answer to `op` against the operation's result schema. */
export function parseNodeResult<Op extends NodeOperation>(op: Op, result: unknown): NodeResultOf<Op> {
  const parsed = NODE_OPERATIONS[op].result.safeParse(result);
  if (parsed.success) return parsed.data as NodeResultOf<Op>;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  throw new QuantixError(ErrorCode.PROTOCOL_INVALID_MESSAGE, `Invalid result of ${op}: ${issues}`, {
    details: { op },
  });
}

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
  // An import's result first: as a plain download's it would lose its source format and OVF facts.
  result: z.union([imageImportResultSchema, imageDownloadResultSchema]).optional(),
});
export type HelloDownload = z.infer<typeof helloDownload>;

/**
 * Messages from the control plane to a node. With nodeMessageSchema, the protocol's own
 * description: `z.toJSONSchema` of either is its JSON Schema (the adversarial suite fuzzes from it).
 */
export const controlMessageSchema = z.discriminatedUnion('type', [
  z.object({
    v: version,
    type: z.literal('welcome'),
    nodeId: id,
    serverTime: short,
    /** The largest frame the control plane takes from this node (absent: an older control plane, no stated limit). */
    maxMessageBytes: z.number().int().positive().optional(),
    /** The version both sides write from now on (absent: an older control plane, version 1). */
    protocol: version.optional(),
    /**
     * The pools of the hello are this node's desired set, and their states are stored: no
     * `pools.desired` follows, and the node's pools are of this generation from now on. Absent:
     * a push follows, as on every connect before version 4.
     */
    poolsCurrent: z.object({ generation: z.number().int().nonnegative() }).optional(),
  }),
  /** The node's full desired pool set. Sent on every (re)connect and on any pool change. */
  z.object({
    v: version,
    type: z.literal('pools.desired'),
    generation: z.number().int().nonnegative(),
    pools: z.array(poolDefinition).max(PROTOCOL_LIMITS.pools),
  }),
  z.object({ v: version, type: z.literal('request'), requestId: id, request: nodeRequestSchema }),
  z.object({ v: version, type: z.literal('error'), error: errorBody }),
]);
export type ControlMessage = z.infer<typeof controlMessageSchema>;

/** Messages from a node to the control plane. */
export const nodeMessageSchema = z.discriminatedUnion('type', [
  z.object({
    v: version,
    type: z.literal('hello'),
    nodeId: id,
    hostname: name.min(1),
    agentVersion: short,
    capabilities: jsonRecord.default({}),
    /** Downloads this node has in hand (absent: an older node, or none). */
    downloads: z.array(helloDownload).max(PROTOCOL_LIMITS.downloads).optional(),
    /** The versions this node speaks (absent: an older node, which speaks only `v`). */
    protocol: versionRange.optional(),
    /**
     * The pools this node holds from the last push it applied: that push's generation, the
     * fingerprint of its definitions (desiredPoolsFingerprint) and the state of each pool now, as
     * `pools.state` would report it. Absent: a node that holds no push yet (or an older node).
     */
    pools: z
      .object({
        generation: z.number().int().nonnegative(),
        fingerprint: z.string().max(PROTOCOL_LIMITS.short),
        reports: z.array(poolReport).max(PROTOCOL_LIMITS.pools),
      })
      .optional(),
  }),
  /**
   * Per-pool state after reconciling generation `generation` (the node's acknowledgement), with
   * every pool of the push; between pushes a node reports only the pools whose state changed.
   * A generation newer than the control plane's current one is refused.
   */
  z.object({
    v: version,
    type: z.literal('pools.state'),
    generation: z.number().int().nonnegative(),
    pools: z.array(poolReport).max(PROTOCOL_LIMITS.pools),
  }),
  z.object({
    v: version,
    type: z.literal('scan.result'),
    poolId: id,
    content: z.enum(POOL_CONTENT_TYPES),
    /**
     * Every file of that content type now in the pool: rows for files not listed become missing.
     * A scan larger than one frame comes in parts with the same `scanId`, numbered from 0; the
     * part with `final: true` closes it, and the files of all its parts are the scan.
     */
    files: z.array(scannedFile).max(PROTOCOL_LIMITS.scanFilesPerMessage),
    /**
     * Paths the scan did not look into; rows under them are left as they are, neither missing nor
     * deleted. Optional and additive: a node that does not send it (protocol 1, an older
     * release) is read as having skipped nothing, as before. In parts, each part may carry some.
     */
    skipped: z.array(scanSkipped).max(PROTOCOL_LIMITS.scanFilesPerMessage).optional(),
    /** Files that are there but unusable (not ISOs): a ready row becomes missing with the reason; no new row. */
    invalid: z.array(scanInvalid).max(PROTOCOL_LIMITS.scanFilesPerMessage).optional(),
    scanId: id.optional(),
    part: z.number().int().nonnegative().max(100_000).optional(),
    final: z.boolean().optional(),
    /**
     * The fingerprint of the files of the whole scan (on its only or final part), when the node
     * can send changes against it later: a scan that skipped nothing. Absent: an older node.
     */
    fingerprint: scanFingerprintText.optional(),
  }),
  /**
   * The changes since the node's last report of a pool, sent instead of scan.result when the
   * request's `since` is the fingerprint of that report (`base`): files added or changed, files
   * gone, files newly found unusable, and the fingerprint of the state after them. A control plane
   * that no longer holds `base` refuses it and asks for a full scan. Sent only when nothing was
   * skipped, and only when it fits one frame.
   */
  z.object({
    v: version,
    type: z.literal('scan.delta'),
    poolId: id,
    content: z.enum(POOL_CONTENT_TYPES),
    base: scanFingerprintText,
    fingerprint: scanFingerprintText,
    files: z.array(scannedFile).max(PROTOCOL_LIMITS.scanFilesPerMessage),
    removed: z.array(relPath).max(PROTOCOL_LIMITS.scanFilesPerMessage),
    invalid: z.array(scanInvalid).max(PROTOCOL_LIMITS.scanFilesPerMessage).optional(),
  }),
  z.object({
    v: version,
    type: z.literal('image.progress'),
    imageId: id,
    /** Set when the download moves on: verifying means every byte arrived and is being checked. */
    phase: z.enum(['downloading', 'verifying']).optional(),
    /** An import's stage after the download (absent: the download's bytes, as before). */
    stage: z.enum(IMAGE_PROGRESS_STAGES).optional(),
    /** The stage's percent, when the stage has no byte count. */
    percent: z.number().min(0).max(100).nullable().optional(),
    bytesDone: bytes,
    bytesTotal: bytes.nullable(),
    bytesPerSecond: z.number().nonnegative().nullable(),
    etaSeconds: z.number().nonnegative().nullable(),
  }),
  z.object({
    v: version,
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
  // A hello is read whatever its version: the versions it offers are negotiated from it.
  const message = value as { v?: unknown; type?: unknown } | null;
  const version = message?.v;
  if (
    message?.type !== 'hello' &&
    (typeof version !== 'number' || version < PROTOCOL_VERSIONS.min || version > PROTOCOL_VERSIONS.max)
  ) {
    // The version is the peer's text: quoted and cut short, never echoed whole.
    const shown = truncateText(JSON.stringify(version) ?? 'none', 32);
    throw new QuantixError(
      ErrorCode.PROTOCOL_VERSION,
      `${side} message speaks protocol version ${shown}; this side speaks ${PROTOCOL_VERSIONS.min}–${PROTOCOL_VERSIONS.max}`,
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
