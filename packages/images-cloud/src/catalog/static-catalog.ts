import {
  type CatalogEntry,
  CHECKSUM_ALGORITHMS,
  ErrorCode,
  FIRMWARE_KINDS,
  IMAGE_FORMATS,
  IMAGE_KINDS,
  type ImageCatalog,
  type ImageKind,
  OS_FAMILIES,
  parseOrThrow,
  QuantixError,
} from '@quantix/core';
import { z } from 'zod';

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http or https URL');

const checksumSchema = z
  .object({ algorithm: z.enum(CHECKSUM_ALGORITHMS), value: z.string().toLowerCase() })
  .refine((c) => new RegExp(`^[0-9a-f]{${c.algorithm === 'sha256' ? 64 : 128}}$`).test(c.value), {
    message: 'must be 64 (sha256) or 128 (sha512) hex digits',
    path: ['value'],
  });

/** The shape a catalog entry must have; what users give is checked against it when the catalog is made. */
export const catalogEntrySchema = z
  .object({
    id: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, . _ -'),
    name: z.string().trim().min(1).max(200),
    description: z.string().max(10_000).default(''),
    kind: z.enum(IMAGE_KINDS).default('cloud'),
    format: z.enum(IMAGE_FORMATS).default('qcow2'),
    os: z
      .object({
        family: z.enum(OS_FAMILIES).default('linux'),
        distribution: z.string().max(100).nullable().default(null),
        version: z.string().max(100).nullable().default(null),
        arch: z.string().max(32).nullable().default('x86_64'),
        defaultUser: z.string().max(64).nullable().default(null),
        cloudInit: z.boolean().default(true),
      })
      .default(() => ({
        family: 'linux' as const,
        distribution: null,
        version: null,
        arch: 'x86_64',
        defaultUser: null,
        cloudInit: true,
      })),
    // What a VM of the entry's image needs at least: VMs below it are refused, so what an entry
    // does not say is no requirement (0 MiB, 0 GiB, any firmware), never a guess.
    requirements: z
      .object({
        minCpu: z.number().int().min(1).default(1),
        minMemoryMiB: z.number().int().min(0).default(0),
        minDiskGiB: z.number().int().min(0).default(0),
        firmware: z.enum(FIRMWARE_KINDS).default('any'),
      })
      .default(() => ({ minCpu: 1, minMemoryMiB: 0, minDiskGiB: 0, firmware: 'any' as const })),
    sourceUrl: httpUrl,
    checksum: checksumSchema.nullable().default(null),
    checksumUrl: httpUrl.nullable().default(null),
    checksumAlgorithm: z.enum(CHECKSUM_ALGORITHMS).nullable().default(null),
    sizeBytes: z.number().int().nonnegative().nullable().default(null),
  })
  .strict()
  .superRefine((entry, ctx) => {
    if (!entry.checksum && !entry.checksumUrl) {
      ctx.addIssue({
        code: 'custom',
        path: ['checksum'],
        message: 'give a checksum or a checksumUrl: downloads are always verified',
      });
    }
  });

/** What a user writes to add an entry: everything but id, name and sourceUrl (and a checksum source) has a default. */
export type CatalogEntryInput = z.input<typeof catalogEntrySchema>;

/** Validates an entry and fills in its defaults; INVALID_INPUT naming each problem. */
export function defineCatalogEntry(input: CatalogEntryInput): CatalogEntry {
  return parseOrThrow(catalogEntrySchema, input, `catalog entry ${JSON.stringify(input?.id ?? '')}`) as CatalogEntry;
}

/**
 * A catalog held in memory: the built-in one, or a user's own entries. Entries are validated
 * when the catalog is made, so a broken entry fails at start-up, not at download time.
 */
export class StaticImageCatalog implements ImageCatalog {
  readonly name: string;
  private readonly entries: readonly CatalogEntry[];

  constructor(options: { name: string; entries: readonly CatalogEntryInput[] }) {
    if (!options.name) throw new QuantixError(ErrorCode.INVALID_INPUT, 'A catalog needs a name');
    this.name = options.name;
    const seen = new Set<string>();
    this.entries = Object.freeze(
      options.entries.map((input) => {
        const entry = Object.freeze(defineCatalogEntry(input));
        if (seen.has(entry.id)) {
          throw new QuantixError(
            ErrorCode.ALREADY_EXISTS,
            `Catalog '${options.name}' lists entry '${entry.id}' twice`,
            { details: { catalog: options.name, id: entry.id } },
          );
        }
        seen.add(entry.id);
        return entry;
      }),
    );
  }

  async list(options: { kind?: ImageKind } = {}): Promise<CatalogEntry[]> {
    return this.entries.filter((entry) => options.kind === undefined || entry.kind === options.kind);
  }

  async get(options: { id: string }): Promise<CatalogEntry | undefined> {
    return this.entries.find((entry) => entry.id === options.id);
  }
}
