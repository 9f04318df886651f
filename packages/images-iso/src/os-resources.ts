import { readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { OsDatabase, OsRef, OsResourceFigures, OsResources } from '@quantix/core';
import { defaultOsinfoDir } from './osinfo.js';
import { compareVersions } from './versions.js';
import { childrenNamed, childText, parseXml, type XmlElement, XmlError } from './xml.js';

/**
 * The `<resources>` of osinfo-db's OS entries (minimum and recommended CPUs, RAM and storage),
 * for the VM wizard's and `vms create`'s defaults, and each OS's osinfo id for the libosinfo
 * metadata of a domain (as virt-install writes it).
 */

interface OsEntry {
  id: string;
  shortIds: string[];
  name: string;
  distro: string | null;
  version: string | null;
  /** The OS it derives from or upgrades: where its resources come from when it lists none. */
  parent: string | null;
  /** Per architecture ('all' for every one). */
  resources: Map<string, { minimum: OsResourceFigures | null; recommended: OsResourceFigures | null }>;
}

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

function figures(element: XmlElement | undefined): OsResourceFigures | null {
  if (!element) return null;
  const number = (name: string) => {
    const text = childText(element, name);
    return text !== null && /^\d+$/.test(text) ? Number(text) : null;
  };
  const ram = number('ram');
  const storage = number('storage');
  return {
    cpus: number('n-cpus'),
    memoryMiB: ram === null ? null : Math.ceil(ram / MIB),
    diskGiB: storage === null ? null : Math.ceil(storage / GIB),
  };
}

function entriesOf(document: XmlElement): OsEntry[] {
  const entries: OsEntry[] = [];
  for (const libosinfo of childrenNamed(document, 'libosinfo')) {
    for (const os of childrenNamed(libosinfo, 'os')) {
      const id = os.attributes.id;
      if (!id) continue;
      const resources: OsEntry['resources'] = new Map();
      for (const r of childrenNamed(os, 'resources')) {
        resources.set(r.attributes.arch ?? 'all', {
          minimum: figures(childrenNamed(r, 'minimum')[0]),
          recommended: figures(childrenNamed(r, 'recommended')[0]),
        });
      }
      const parentOf = (name: string) => childrenNamed(os, name)[0]?.attributes.id ?? null;
      entries.push({
        id,
        shortIds: childrenNamed(os, 'short-id').map((e) => e.text.trim()),
        name: childText(os, 'name') ?? id,
        distro: childText(os, 'distro'),
        version: childText(os, 'version'),
        parent: parentOf('derives-from') ?? parentOf('upgrades'),
        resources,
      });
    }
  }
  return entries;
}

/** osinfo-db's OS entries under `dir` (holding os/), read once; an empty list when there is none. */
async function loadEntries(dir: string): Promise<OsEntry[]> {
  const osDir = join(dir, 'os');
  let vendors: string[];
  try {
    vendors = (await readdir(osDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: OsEntry[] = [];
  for (const vendor of vendors.sort()) {
    for (const file of readdirSync(join(osDir, vendor)).filter((f) => f.endsWith('.xml'))) {
      try {
        entries.push(...entriesOf(parseXml(readFileSync(join(osDir, vendor, file), 'utf8'))));
      } catch (error) {
        // One damaged file costs its own entries, as for the media rules.
        if (!(error instanceof XmlError)) throw error;
      }
    }
  }
  return entries;
}

export interface OsResourcesDatabaseOptions {
  /** osinfo-db's root (holding os/). Default: defaultOsinfoDir(). */
  dir?: string;
}

/**
 * The OS database from osinfo-db. `resourcesFor` finds an OS by its short id, else by
 * distribution and version; a release newer than the database (Ubuntu 24.04 in osinfo-db of
 * 2022) gets the resources of the newest release of its distribution before it, with `exact:
 * false`, and an osinfo id in the same scheme (`http://ubuntu.com/ubuntu/24.04`). An OS that
 * lists no resources takes those of the OS it derives from (or upgrades), as far back as needed.
 */
export function createOsResourcesDatabase(options: OsResourcesDatabaseOptions = {}): OsDatabase {
  let loading: Promise<OsEntry[]> | null = null;
  const entries = () => {
    if (!loading) {
      loading = loadEntries(options.dir ?? defaultOsinfoDir());
      loading.catch(() => {
        loading = null;
      });
    }
    return loading;
  };
  return {
    async resourcesFor(os: OsRef): Promise<OsResources | null> {
      const all = await entries();
      const byId = new Map(all.map((e) => [e.id, e]));
      const distro = os.distribution?.toLowerCase() ?? null;
      let entry = os.shortId ? all.find((e) => e.shortIds.includes(os.shortId as string)) : undefined;
      entry ??= all.find((e) => distro !== null && e.distro === distro && e.version === os.version);
      let exact = entry !== undefined;
      if (!entry && distro && os.version) {
        const older = all
          .filter((e) => e.distro === distro && e.version && compareVersions(e.version, os.version as string) < 0)
          .sort((a, b) => compareVersions(b.version as string, a.version as string));
        entry = older[0];
        exact = false;
      }
      if (!entry) return null;
      const arch = os.arch ?? 'x86_64';
      let minimum: OsResourceFigures | null = null;
      let recommended: OsResourceFigures | null = null;
      // Each of minimum and recommended from the nearest entry up the chain that lists it.
      for (let at: OsEntry | undefined = entry, hops = 0; at && hops < 32; at = byId.get(at.parent ?? ''), hops++) {
        const listed = at.resources.get(arch) ?? at.resources.get('all');
        minimum ??= listed?.minimum ?? null;
        recommended ??= listed?.recommended ?? null;
        if (minimum && recommended) break;
      }
      const osId =
        exact || !entry.version || !entry.id.endsWith(`/${entry.version}`)
          ? entry.id
          : `${entry.id.slice(0, -entry.version.length)}${os.version}`;
      return {
        osId,
        name: exact ? entry.name : `${os.distribution} ${os.version}`,
        exact,
        basedOn: entry.shortIds[0] ?? entry.id,
        minimum,
        recommended,
      };
    },
  };
}
