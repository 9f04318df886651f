import type { CatalogEntry, ImageCatalog } from '../contracts/catalog.js';
import type { ImageKind } from '../domain/image.js';
import { ErrorCode, QuantixError } from '../errors.js';

/** A catalog entry as the registry lists it: the entry, and the catalog it came from. */
export interface RegisteredCatalogEntry extends CatalogEntry {
  /** Name of the catalog that supplied this entry (the last one that had its id). */
  catalog: string;
  /** Names of earlier catalogs whose entry with the same id this one replaced, in order. */
  overrides: string[];
}

export interface CatalogListing {
  entries: RegisteredCatalogEntry[];
  /** Catalogs that failed to list (a remote catalog that is down); their entries are missing. */
  failures: { catalog: string; message: string }[];
}

/**
 * Merges several image catalogs into one listing. Catalogs are read in the order given and an
 * entry id is unique in the result: a later catalog's entry replaces an earlier one with the
 * same id, so a user catalog given after the built-in one can point an entry at a mirror. A
 * catalog that fails to list is reported in `failures` and does not hide the others.
 */
export class CatalogRegistry implements ImageCatalog {
  readonly name = 'registry';
  private readonly catalogs: readonly ImageCatalog[];

  constructor(options: { catalogs: readonly ImageCatalog[] }) {
    const names = new Set<string>();
    for (const catalog of options.catalogs) {
      if (names.has(catalog.name)) {
        throw new QuantixError(
          ErrorCode.ALREADY_EXISTS,
          `Two image catalogs are named '${catalog.name}'; give each catalog its own name`,
          { details: { catalog: catalog.name } },
        );
      }
      names.add(catalog.name);
    }
    this.catalogs = [...options.catalogs];
  }

  /** Names of the merged catalogs, in merge order. */
  get catalogNames(): string[] {
    return this.catalogs.map((catalog) => catalog.name);
  }

  async listDetailed(options: { kind?: ImageKind } = {}): Promise<CatalogListing> {
    const results = await Promise.allSettled(this.catalogs.map((catalog) => catalog.list(options)));
    const byId = new Map<string, RegisteredCatalogEntry>();
    const failures: CatalogListing['failures'] = [];
    results.forEach((result, index) => {
      const catalog = (this.catalogs[index] as ImageCatalog).name;
      if (result.status === 'rejected') {
        failures.push({ catalog, message: (result.reason as Error)?.message ?? String(result.reason) });
        return;
      }
      for (const entry of result.value) {
        if (options.kind !== undefined && entry.kind !== options.kind) continue;
        const previous = byId.get(entry.id);
        // Delete first so that a replaced entry moves to where its new catalog lists it.
        byId.delete(entry.id);
        byId.set(entry.id, {
          ...entry,
          catalog,
          overrides: previous ? [...previous.overrides, previous.catalog] : [],
        });
      }
    });
    return { entries: [...byId.values()], failures };
  }

  async list(options: { kind?: ImageKind } = {}): Promise<CatalogEntry[]> {
    return (await this.listDetailed(options)).entries;
  }

  /** The entry with this id from the last catalog that has it; undefined when none has. */
  async get(options: { id: string }): Promise<RegisteredCatalogEntry | undefined> {
    for (let index = this.catalogs.length - 1; index >= 0; index--) {
      const catalog = this.catalogs[index] as ImageCatalog;
      const entry = catalog.get
        ? await catalog.get({ id: options.id })
        : (await catalog.list()).find((candidate) => candidate.id === options.id);
      if (entry) {
        const overrides: string[] = [];
        for (let earlier = 0; earlier < index; earlier++) {
          const other = this.catalogs[earlier] as ImageCatalog;
          const found = other.get
            ? await other.get({ id: options.id })
            : (await other.list()).find((candidate) => candidate.id === options.id);
          if (found) overrides.push(other.name);
        }
        return { ...entry, catalog: catalog.name, overrides };
      }
    }
    return undefined;
  }

  /** Like get, but NOT_FOUND naming the catalogs searched. */
  async require(options: { id: string }): Promise<RegisteredCatalogEntry> {
    const entry = await this.get(options);
    if (!entry) {
      const searched = this.catalogNames.join(', ') || 'none';
      throw new QuantixError(ErrorCode.NOT_FOUND, `No catalog has an entry '${options.id}' (catalogs: ${searched})`, {
        details: { id: options.id, catalogs: this.catalogNames },
      });
    }
    return entry;
  }
}
