import { z } from 'zod';
import { ErrorCode, QuantixError } from '../errors.js';
import { assertRelPath } from './paths.js';
import { replaceUnsafeLabelCharacters } from './unsafe-text.js';
import {
  byteCountSchema,
  idSchema,
  labelsSchema,
  nameSchema,
  parseOrThrow,
  replaceUnsafeNameCharacters,
} from './validation.js';

export const IMAGE_KINDS = ['cloud', 'iso'] as const;
export type ImageKind = (typeof IMAGE_KINDS)[number];

export const IMAGE_FORMATS = ['qcow2', 'raw', 'iso', 'vmdk', 'vhdx'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const IMAGE_PHASES = ['pending', 'downloading', 'verifying', 'ready', 'error', 'deleting', 'missing'] as const;
export type ImagePhase = (typeof IMAGE_PHASES)[number];

/** Phases that mean "work in flight": a restart must resume or fail these, never leave them. */
export const TRANSIENT_IMAGE_PHASES: readonly ImagePhase[] = ['downloading', 'verifying'];

/** Phases an image may be created in: pending (to be fetched) or ready (found or uploaded). */
export const INITIAL_IMAGE_PHASES: readonly ImagePhase[] = ['pending', 'ready'];

/**
 * The image lifecycle. A phase may always be "changed" to itself (progress, metadata);
 * every other change must be listed here.
 */
export const IMAGE_PHASE_TRANSITIONS: Readonly<Record<ImagePhase, readonly ImagePhase[]>> = {
  pending: ['downloading', 'verifying', 'ready', 'error', 'deleting'],
  downloading: ['verifying', 'error', 'pending', 'deleting'],
  verifying: ['ready', 'error', 'downloading', 'deleting'],
  // ready → error: a verify read the file whole and it is not the one recorded (CHECKSUM_MISMATCH).
  ready: ['missing', 'verifying', 'error', 'deleting'],
  // error → verifying: such a file read whole again (then ready, when it matches or is accepted).
  error: ['pending', 'downloading', 'verifying', 'deleting'],
  missing: ['ready', 'pending', 'deleting'],
  deleting: ['error'],
};

export function canTransitionImage(from: ImagePhase, to: ImagePhase): boolean {
  return from === to || IMAGE_PHASE_TRANSITIONS[from].includes(to);
}

export function assertImageTransition(from: ImagePhase, to: ImagePhase, imageId?: string): void {
  if (canTransitionImage(from, to)) return;
  const allowed = IMAGE_PHASE_TRANSITIONS[from];
  throw new QuantixError(
    ErrorCode.ILLEGAL_PHASE_TRANSITION,
    `Image${imageId ? ` ${imageId}` : ''} cannot go from '${from}' to '${to}'; from '${from}' it may go to: ${allowed.join(', ')}`,
    { details: { imageId, from, to, allowed } },
  );
}

export const OS_FAMILIES = ['linux', 'windows', 'bsd', 'other', 'unknown'] as const;
export type OsFamily = (typeof OS_FAMILIES)[number];

/** How an OS was identified: osinfo-db's entry, the label read by a family rule, a release newer than the database, the file name. */
export const OS_CONFIDENCES = ['exact', 'label', 'extrapolated', 'filename'] as const;
export type OsConfidence = (typeof OS_CONFIDENCES)[number];

export interface OsInfo {
  family: OsFamily;
  distribution: string | null;
  version: string | null;
  arch: string | null;
  defaultUser: string | null;
  cloudInit: boolean;
  /** osinfo-db's short id of the release ("fedora41", "win10"); absent on rows written before identification recorded it. */
  shortId?: string | null;
  /** How the OS was identified; absent or null when it was not (catalog entries, unknown media). */
  confidence?: OsConfidence | null;
  /** The osinfo-db release (its VERSION, e.g. "20221203") identification consulted, when one was loaded. */
  osinfoVersion?: string | null;
}

export const FIRMWARE_KINDS = ['bios', 'uefi', 'any'] as const;
export type Firmware = (typeof FIRMWARE_KINDS)[number];

/**
 * The label an ISO's inspection (@quantix/images-iso, on a scan or an upload) writes: the
 * platforms its El Torito catalog boots ('bios,uefi'), or 'none' when it has no boot record.
 */
export const ISO_BOOT_LABEL = 'iso.quantix.io/boot';

/**
 * Whether the image is an ISO whose inspection found nothing to boot: a data disc (drivers such as
 * virtio-win, tools), which a VM can hold in its drive but never boot from — a VM made from it
 * would sit at "no bootable device". An ISO not inspected (no label) is not taken for one.
 */
export function isDataDisc(image: Pick<Image, 'kind' | 'labels'>): boolean {
  return image.kind === 'iso' && image.labels[ISO_BOOT_LABEL] === 'none';
}

export interface ImageRequirements {
  minCpu: number;
  minMemoryMiB: number;
  minDiskGiB: number;
  firmware: Firmware;
}

export interface ImageProgress {
  bytesDone: number;
  bytesTotal: number | null;
  percent: number | null;
  /**
   * What the figures count, when it is not the download's bytes: an import's later stages
   * (decompressing, converting, …) run with the row in `verifying`, their percent here.
   */
  stage?: ImageProgressStage;
}

/** The stages an image's progress can report: its download, then an import's own. */
export const IMAGE_PROGRESS_STAGES = ['downloading', 'decompressing', 'inspecting', 'converting', 'verifying'] as const;
export type ImageProgressStage = (typeof IMAGE_PROGRESS_STAGES)[number];

export const CHECKSUM_ALGORITHMS = ['sha256', 'sha512'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface Checksum {
  algorithm: ChecksumAlgorithm;
  value: string;
}

export interface ImageError {
  code: string;
  message: string;
  retryable: boolean;
}

/** Canonical location: pool-relative. Absolute paths are derived per node from its mount path. */
export interface PoolLocation {
  poolId: string;
  relPath: string;
}

export interface Image {
  id: string;
  name: string;
  description: string;
  labels: Record<string, string>;
  kind: ImageKind;
  format: ImageFormat | null;
  os: OsInfo;
  requirements: ImageRequirements;
  catalogId: string | null;
  phase: ImagePhase;
  progress: ImageProgress | null;
  sizeBytes: number | null;
  virtualSizeBytes: number | null;
  checksum: Checksum | null;
  error: ImageError | null;
  location: PoolLocation | null;
  /** Set for images in a node-local pool: the node whose disk holds the file. */
  nodeId: string | null;
  /** Modification time of the file when last seen, so unchanged files need no re-read. */
  fileModifiedAt: Date | null;
  /** Optimistic-concurrency version, bumped by every update. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

const osSchema = z.object({
  family: z.enum(OS_FAMILIES).default('unknown'),
  distribution: z.string().max(100).nullable().default(null),
  version: z.string().max(100).nullable().default(null),
  arch: z.string().max(32).nullable().default(null),
  defaultUser: z.string().max(64).nullable().default(null),
  cloudInit: z.boolean().default(false),
  // Optional without a default, so rows and callers that never set them read back unchanged.
  shortId: z.string().max(100).nullable().optional(),
  confidence: z.enum(OS_CONFIDENCES).nullable().optional(),
  osinfoVersion: z.string().max(64).nullable().optional(),
});

// What a VM of the image needs at least; what its source did not say is no requirement (0 MiB,
// 0 GiB, any firmware): VMs below a requirement are refused, so none is made up.
const requirementsSchema = z.object({
  minCpu: z.number().int().min(1).default(1),
  minMemoryMiB: z.number().int().min(0).default(0),
  minDiskGiB: z.number().int().min(0).default(0),
  firmware: z.enum(FIRMWARE_KINDS).default('any'),
});

const progressSchema = z.object({
  bytesDone: byteCountSchema,
  bytesTotal: byteCountSchema.nullable().default(null),
  percent: z.number().min(0).max(100).nullable().default(null),
  stage: z.enum(IMAGE_PROGRESS_STAGES).optional(),
});

/** A checksum as rows and requests carry it: a known algorithm and its hex digest, lower case. */
export const checksumSchema = z
  .object({ algorithm: z.enum(CHECKSUM_ALGORITHMS), value: z.string().toLowerCase() })
  .superRefine((c, ctx) => {
    const length = c.algorithm === 'sha256' ? 64 : 128;
    if (!new RegExp(`^[0-9a-f]{${length}}$`).test(c.value)) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: `must be ${length} hex digits for ${c.algorithm}` });
    }
  });

const errorSchema = z.object({
  code: z.string().min(1),
  message: z.string().min(1),
  retryable: z.boolean().default(false),
});

const locationSchema = z.object({ poolId: idSchema, relPath: z.string() });

const imageFields = {
  name: nameSchema,
  description: z.string().max(10_000).default(''),
  labels: labelsSchema.default({}),
  kind: z.enum(IMAGE_KINDS),
  format: z.enum(IMAGE_FORMATS).nullable().default(null),
  os: osSchema.default(() => osSchema.parse({})),
  requirements: requirementsSchema.default(() => requirementsSchema.parse({})),
  catalogId: z.string().min(1).max(200).nullable().default(null),
  phase: z.enum(IMAGE_PHASES).default('pending'),
  progress: progressSchema.nullable().default(null),
  sizeBytes: byteCountSchema.nullable().default(null),
  virtualSizeBytes: byteCountSchema.nullable().default(null),
  checksum: checksumSchema.nullable().default(null),
  error: errorSchema.nullable().default(null),
  location: locationSchema.nullable().default(null),
  nodeId: idSchema.nullable().default(null),
  fileModifiedAt: z.date().nullable().default(null),
};

const newImageSchema = z.object({ id: idSchema.optional(), ...imageFields }).strict();

/** What a caller gives to create an image; everything but name and kind has a default. */
export type NewImage = z.input<typeof newImageSchema>;
export type ValidNewImage = z.output<typeof newImageSchema>;

/** Fields an update may change. `id`, `version` and timestamps are managed by the repository. */
const imagePatchSchema = z
  .object({
    name: imageFields.name,
    description: z.string().max(10_000),
    labels: labelsSchema,
    kind: imageFields.kind,
    format: z.enum(IMAGE_FORMATS).nullable(),
    os: osSchema,
    requirements: requirementsSchema,
    catalogId: z.string().min(1).max(200).nullable(),
    phase: z.enum(IMAGE_PHASES),
    progress: progressSchema.nullable(),
    sizeBytes: byteCountSchema.nullable(),
    virtualSizeBytes: byteCountSchema.nullable(),
    checksum: checksumSchema.nullable(),
    error: errorSchema.nullable(),
    location: locationSchema.nullable(),
    nodeId: idSchema.nullable(),
    fileModifiedAt: z.date().nullable(),
  })
  .partial()
  .strict();

export type ImagePatch = z.input<typeof imagePatchSchema>;
export type ValidImagePatch = z.output<typeof imagePatchSchema>;

function checkLocation(location: PoolLocation | null | undefined): void {
  if (location) assertRelPath(location.relPath);
}

/** Validates and fills defaults for a new image; throws INVALID_INPUT or PATH_ESCAPES_POOL. */
export function validateNewImage(input: NewImage): ValidNewImage {
  const image = parseOrThrow(newImageSchema, input, 'image');
  checkLocation(image.location);
  if (!INITIAL_IMAGE_PHASES.includes(image.phase)) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Invalid image: a new image starts in phase ${INITIAL_IMAGE_PHASES.map((p) => `'${p}'`).join(' or ')}, not '${image.phase}'`,
      { details: { issues: [{ path: 'phase', message: 'not an initial phase' }] } },
    );
  }
  return image;
}

export function validateImagePatch(patch: ImagePatch): ValidImagePatch {
  const valid = parseOrThrow(imagePatchSchema, patch, 'image update');
  checkLocation(valid.location);
  return valid;
}

/** A file found in a pool by a scan; it becomes (or refreshes) a `ready` image at that location. */
export interface DiscoveredImage {
  poolId: string;
  relPath: string;
  kind: ImageKind;
  name?: string;
  format?: ImageFormat | null;
  sizeBytes: number;
  fileModifiedAt?: Date | null;
  nodeId?: string | null;
  os?: Partial<OsInfo>;
  labels?: Record<string, string>;
}

const discoveredSchema = z
  .object({
    poolId: idSchema,
    relPath: z.string(),
    kind: z.enum(IMAGE_KINDS),
    name: nameSchema.optional(),
    format: z.enum(IMAGE_FORMATS).nullable().default(null),
    sizeBytes: byteCountSchema,
    fileModifiedAt: z.date().nullable().default(null),
    nodeId: idSchema.nullable().default(null),
    os: osSchema.default(() => osSchema.parse({})),
    labels: labelsSchema.default({}),
  })
  .strict();

export type ValidDiscoveredImage = z.output<typeof discoveredSchema> & { name: string };

/**
 * A found file's name and labels come from the file (its name, or what its contents say — an ISO's
 * volume id), not from a person: characters no name may hold are replaced (U+FFFD) rather than
 * refused, so one odd file cannot fail a whole scan, and none reaches a screen as a bidi override
 * or a terminal escape.
 */
export function validateDiscoveredImage(input: DiscoveredImage): ValidDiscoveredImage {
  const given = input.name === undefined ? undefined : replaceUnsafeNameCharacters(input.name);
  const labels = input.labels && replaceUnsafeLabelCharacters(input.labels);
  const found = parseOrThrow(
    discoveredSchema,
    {
      ...input,
      name: given === undefined || given.trim() === '' ? undefined : given,
      ...(labels ? { labels } : {}),
    },
    'discovered image',
  );
  assertRelPath(found.relPath);
  const name = found.name ?? replaceUnsafeNameCharacters(found.relPath.slice(found.relPath.lastIndexOf('/') + 1));
  return { ...found, name };
}
