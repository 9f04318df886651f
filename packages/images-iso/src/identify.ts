import { basename } from 'node:path';
import type { OsFamily, OsInfo } from '@quantix/core';
import { BUILTIN_RULES, FILENAME_RULES, type IdentifiedOs, type MediaPurpose, normalizeArch } from './builtin-rules.js';
import type { IsoInfo } from './iso9660.js';
import {
  getOsinfoDatabase,
  type IsoFields,
  type LoadOsinfoOptions,
  type OsinfoDatabase,
  type OsinfoMediaRule,
} from './osinfo.js';

/** Which rule identified the OS: osinfo-db, the built-in table, the file name, or nothing. */
export type IdentificationSource = 'osinfo' | 'builtin' | 'filename' | 'none';

export interface OsIdentification {
  /** As stored on the image row. */
  os: OsInfo;
  /** A human-readable name ("Ubuntu 24.04 LTS", "Microsoft Windows 11"), when known. */
  name: string | null;
  purpose: MediaPurpose | null;
  language: string | null;
  source: IdentificationSource;
  /** The rule that matched: `osinfo:<short-id>`, `builtin:<id>`, `filename:<id>`; null for 'none'. */
  rule: string | null;
  /** osinfo-db's id of the OS when osinfo matched ('http://ubuntu.com/ubuntu/22.04'). */
  osinfoId: string | null;
  /** When osinfo-db names only the major release, the rule whose label reading made the version precise. */
  versionFrom: string | null;
  /**
   * Other releases the same descriptors also match (Windows 10 for a Windows 11 label), left out
   * because the ISO's creation date or a newer entry decided; empty when the match was unique.
   */
  alternatives: string[];
}

/** The ISO fields identification reads; an IsoInfo from readIsoInfo has them all. */
export type IsoIdentity = Pick<
  IsoInfo,
  'volumeId' | 'systemId' | 'publisherId' | 'applicationId' | 'volumeSizeBytes' | 'createdAt'
> & { udf?: { volumeId: string | null } | null; joliet?: { volumeId: string } | null };

export interface IdentifyOsOptions {
  /** What the ISO says about itself; null or absent when it could not be read. */
  iso?: IsoIdentity | null;
  /** The file's name (a path is reduced to its last segment), tried when the descriptors match nothing. */
  fileName?: string | null;
  /** A loaded osinfo database, or null to use the built-in table only. */
  osinfo: OsinfoDatabase | null;
}

/** Media are mastered before release: how long before its release date an ISO may have been made. */
const MASTERING_LEAD_MS = 120 * 24 * 3600 * 1000;
/** Identifications remembered per osinfo database (pools repeat labels; matching scans ~2,000 patterns). */
const MEMO_LIMIT = 2048;

interface Candidate {
  source: 'osinfo' | 'builtin';
  rule: string;
  os: IdentifiedOs;
  osinfoId: string | null;
  releaseDate: string | null;
  /** osinfo-db's "-unknown" entries stand for any future release; anything precise beats them. */
  placeholder: boolean;
  specificity: number;
}

const FAMILIES: Record<string, OsFamily> = {
  linux: 'linux',
  winnt: 'windows',
  win9x: 'windows',
  win16: 'windows',
  freebsd: 'bsd',
  openbsd: 'bsd',
  netbsd: 'bsd',
  dragonflybsd: 'bsd',
};

/** Windows versions as people name them, from osinfo-db's short ids (its <version> is the NT kernel's). */
function windowsVersion(shortId: string): string | null {
  const server = /^win2k(\d*)(r2)?$/.exec(shortId);
  if (server) {
    if (server[1] === '') return '2000';
    return `20${(server[1] as string).padStart(2, '0')}${server[2] ? ' R2' : ''}`;
  }
  const client = /^win(\d+(?:\.\d+)?|xp|vista|me)$/.exec(shortId);
  return client ? (client[1] as string) : null;
}

function fromOsinfo(rule: OsinfoMediaRule): IdentifiedOs {
  const family = FAMILIES[rule.family ?? ''] ?? 'other';
  let distribution = rule.distro?.toLowerCase() ?? null;
  let version = rule.version && !/unknown/i.test(rule.version) ? rule.version : null;
  if (distribution === 'win' || distribution === 'winnt') {
    distribution = /^win2k\d/.test(rule.shortId) ? 'windows-server' : 'windows';
    version = windowsVersion(rule.shortId) ?? version;
  } else if (rule.shortId.startsWith('centos-stream')) {
    distribution = 'centos-stream';
  }
  return {
    family,
    distribution,
    version,
    arch: normalizeArch(rule.arch),
    name: rule.name,
    purpose: rule.live ? 'live' : 'installer',
    language: null,
  };
}

function fieldsOf(iso: IsoIdentity): IsoFields {
  return {
    // Some media leave the ISO 9660 label empty and name themselves in UDF or Joliet only.
    volumeId: iso.volumeId || iso.udf?.volumeId || iso.joliet?.volumeId || '',
    systemId: iso.systemId,
    publisherId: iso.publisherId,
    applicationId: iso.applicationId,
    volumeSizeBytes: iso.volumeSizeBytes,
  };
}

function osinfoCandidates(db: OsinfoDatabase, fields: IsoFields): Candidate[] {
  return db.match(fields).map(({ rule, fieldsMatched }) => ({
    source: 'osinfo',
    rule: `osinfo:${rule.shortId}`,
    os: fromOsinfo(rule),
    osinfoId: rule.osId,
    releaseDate: rule.releaseDate,
    placeholder: /unknown/i.test(rule.shortId) || /unknown/i.test(rule.version ?? ''),
    // More constrained fields, then a longer (more literal) pattern, make a more specific match.
    specificity: fieldsMatched * 1000 + (rule.volumeId?.length ?? 0),
  }));
}

function builtinCandidates(fields: IsoFields): Candidate[] {
  const found: Candidate[] = [];
  for (const rule of BUILTIN_RULES) {
    const match = rule.volumeId.exec(fields.volumeId);
    if (!match) continue;
    if (rule.publisherId && !rule.publisherId.test(fields.publisherId ?? '')) continue;
    found.push({
      source: 'builtin',
      rule: `builtin:${rule.id}`,
      os: rule.identify(match),
      osinfoId: null,
      releaseDate: rule.releaseDate ?? null,
      placeholder: false,
      specificity: rule.volumeId.source.length,
    });
  }
  return found;
}

/**
 * The best of several candidates: releases dated after the ISO was made (allowing for mastering
 * lead time) drop out, placeholders come last, then the newest release, then the most specific.
 */
function best(candidates: Candidate[], createdAt: Date | null): Candidate | null {
  let pool = candidates;
  if (createdAt && pool.length > 1) {
    const latest = createdAt.getTime() + MASTERING_LEAD_MS;
    const possible = pool.filter((c) => c.releaseDate === null || Date.parse(c.releaseDate) <= latest);
    if (possible.length > 0) pool = possible;
  }
  const sorted = [...pool].sort(
    (a, b) =>
      Number(a.placeholder) - Number(b.placeholder) ||
      (b.releaseDate ?? '').localeCompare(a.releaseDate ?? '') ||
      b.specificity - a.specificity,
  );
  return sorted[0] ?? null;
}

const describe = (os: IdentifiedOs): string => `${os.distribution ?? os.family}${os.version ? ` ${os.version}` : ''}`;

function toIdentification(
  chosen: IdentifiedOs,
  source: IdentificationSource,
  rule: string | null,
  extra: Partial<Pick<OsIdentification, 'osinfoId' | 'versionFrom' | 'alternatives'>> = {},
): OsIdentification {
  return {
    os: {
      family: chosen.family,
      distribution: chosen.distribution,
      version: chosen.version,
      arch: chosen.arch,
      defaultUser: null,
      cloudInit: false,
    },
    name: chosen.name,
    purpose: chosen.purpose,
    language: chosen.language,
    source,
    rule,
    osinfoId: extra.osinfoId ?? null,
    versionFrom: extra.versionFrom ?? null,
    alternatives: extra.alternatives ?? [],
  };
}

/** The OS the descriptors name, from osinfo-db and the built-in table; null when neither knows them. */
function identifyDescriptors(iso: IsoIdentity, db: OsinfoDatabase | null): OsIdentification | null {
  const fields = fieldsOf(iso);
  if (fields.volumeId === '' && !fields.publisherId && !fields.applicationId) return null;
  const fromDb = db ? osinfoCandidates(db, fields) : [];
  const fromTable = builtinCandidates(fields);
  const createdAt = iso.createdAt ?? null;
  const osinfo = best(fromDb, createdAt);
  const builtin = best(fromTable, createdAt);
  const useBuiltin =
    builtin !== null &&
    (osinfo === null ||
      osinfo.placeholder ||
      (builtin.releaseDate !== null && (osinfo.releaseDate === null || builtin.releaseDate > osinfo.releaseDate)));
  const chosen = useBuiltin ? builtin : osinfo;
  if (!chosen) return null;

  const seen = new Set([describe(chosen.os)]);
  const alternatives: string[] = [];
  for (const candidate of [...fromDb, ...fromTable]) {
    const label = describe(candidate.os);
    if (candidate.placeholder || seen.has(label)) continue;
    if (chosen.os.version && candidate.os.version?.startsWith(`${chosen.os.version}.`)) continue;
    seen.add(label);
    alternatives.push(candidate.rule);
  }

  if (chosen.source === 'builtin') return toIdentification(chosen.os, 'builtin', chosen.rule, { alternatives });
  // osinfo-db has one entry for all of Rocky 9 or AlmaLinux 9; the label says which minor release.
  const refinement = fromTable.find(
    (c) =>
      c.os.distribution === chosen.os.distribution &&
      chosen.os.version !== null &&
      c.os.version?.startsWith(`${chosen.os.version}.`),
  );
  const os = refinement ? { ...chosen.os, version: refinement.os.version, name: refinement.os.name } : chosen.os;
  return toIdentification(os, 'osinfo', chosen.rule, {
    osinfoId: chosen.osinfoId,
    versionFrom: refinement?.rule ?? null,
    alternatives,
  });
}

const memos = new WeakMap<object, Map<string, OsIdentification | null>>();
const NO_DATABASE = {};

function memoized(iso: IsoIdentity, db: OsinfoDatabase | null): OsIdentification | null {
  let memo = memos.get(db ?? NO_DATABASE);
  if (!memo) {
    memo = new Map();
    memos.set(db ?? NO_DATABASE, memo);
  }
  const key = [
    iso.volumeId,
    iso.systemId,
    iso.publisherId,
    iso.applicationId,
    iso.volumeSizeBytes,
    iso.createdAt?.getTime() ?? '',
    iso.udf?.volumeId ?? '',
    iso.joliet?.volumeId ?? '',
  ].join('\0');
  if (memo.has(key)) return memo.get(key) as OsIdentification | null;
  const result = identifyDescriptors(iso, db);
  if (memo.size >= MEMO_LIMIT) memo.delete(memo.keys().next().value as string);
  memo.set(key, result);
  return result;
}

/**
 * Identifies the OS of an ISO: osinfo-db's patterns and the built-in table on what the ISO says
 * about itself, then the file name as a last resort. Never throws for unknown media: the result
 * is then family 'unknown' with source 'none'.
 */
export function identifyOs(options: IdentifyOsOptions): OsIdentification {
  const fromDescriptors = options.iso ? memoized(options.iso, options.osinfo) : null;
  if (fromDescriptors) return fromDescriptors;
  if (options.fileName) {
    const name = basename(options.fileName);
    for (const rule of FILENAME_RULES) {
      const match = rule.pattern.exec(name);
      if (match) return toIdentification(rule.identify(match), 'filename', `filename:${rule.id}`);
    }
  }
  return toIdentification(
    { family: 'unknown', distribution: null, version: null, arch: null, name: null, purpose: null, language: null },
    'none',
    null,
  );
}

export interface IdentifyIsoOptions {
  iso?: IsoIdentity | null;
  fileName?: string | null;
  /** Where to load osinfo-db from (loaded once per process), or false to use the built-in table only. */
  osinfo?: LoadOsinfoOptions | false;
}

/** identifyOs, loading osinfo-db on first use. */
export async function identifyIso(options: IdentifyIsoOptions): Promise<OsIdentification> {
  const osinfo = options.osinfo === false ? null : await getOsinfoDatabase(options.osinfo ?? {});
  return identifyOs({ iso: options.iso ?? null, fileName: options.fileName ?? null, osinfo });
}
