import { basename } from 'node:path';
import type { OsConfidence, OsFamily, OsInfo } from '@quantix/core';
import { normalizeArch } from './arch.js';
import { BUILTIN_RULES, FILENAME_RULES, type IdentifiedOs, type MediaPurpose } from './builtin-rules.js';
import { FAMILY_RULES, type LabelReading } from './family-rules.js';
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
  /** As stored on the image row (with shortId, confidence and osinfoVersion). */
  os: OsInfo;
  /** A human-readable name ("Ubuntu 24.04 LTS", "Microsoft Windows 11"), when known. */
  name: string | null;
  purpose: MediaPurpose | null;
  language: string | null;
  source: IdentificationSource;
  /** The rule that matched: `osinfo:<short-id>`, `builtin:<id>`, `filename:<id>`; null for 'none'. */
  rule: string | null;
  /** osinfo-db's short id of the release ("fedora41", "rhel9.6", "win10"); null when no release is named. */
  shortId: string | null;
  /**
   * How sure the answer is: 'exact' (an osinfo-db entry matched), 'label' (a family rule read the
   * release from the label), 'extrapolated' (the label names a release newer than anything the
   * database knows), 'filename' (only the file name named it); null when nothing was identified.
   */
  confidence: OsConfidence | null;
  /** The VERSION of the osinfo-db consulted (e.g. "20221203"); null when none was loaded. */
  osinfoVersion: string | null;
  /** osinfo-db's id of the OS when osinfo matched ('http://ubuntu.com/ubuntu/22.04'). */
  osinfoId: string | null;
  /** When osinfo-db names only the major release, the rule whose label reading made the version precise. */
  versionFrom: string | null;
  /**
   * Other releases the same descriptors also match (Windows 10 for a Windows 11 label), left out
   * because the label, the volume size or the ISO's creation date decided; empty when the match was unique.
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

/** osinfo-db's "-unknown" entries stand for any release it does not know: they name a family, not a release. */
const isPlaceholder = (rule: OsinfoMediaRule): boolean =>
  /unknown/i.test(rule.shortId) || /unknown/i.test(rule.version ?? '');
/**
 * Catch-alls that overlap release labels: "nixos-unstable" matches the labels of the release it
 * precedes, "guix-latest" any Guix. A family rule that read a release from the label beats them.
 */
const isCatchAll = (rule: OsinfoMediaRule): boolean =>
  /-(?:unstable|latest)$/.test(rule.shortId) || rule.version === 'unstable' || rule.version === '';

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
    shortId: rule.shortId,
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

/** One possible answer: an osinfo-db entry or a family rule's reading of the label. */
interface Option {
  source: 'osinfo' | 'builtin';
  rule: string;
  os: IdentifiedOs;
  confidence: OsConfidence;
  osinfoId: string | null;
  releaseDate: string | null;
  /** osinfo-db pins this entry to the ISO's exact volume size. */
  pinned: boolean;
  fieldsMatched: number;
  /** For readings: every short id the label could stand for. */
  shortIds: readonly string[];
}

/** The short ids a loaded osinfo-db knows, for telling a release it knows from one it does not. */
const knownIds = new WeakMap<OsinfoDatabase, Set<string>>();

function knownIdsOf(db: OsinfoDatabase): Set<string> {
  let known = knownIds.get(db);
  if (!known) {
    known = new Set(db.rules.map((r) => r.shortId));
    knownIds.set(db, known);
  }
  return known;
}

/**
 * The short id a reading stands for, and how sure it is: the most precise short id osinfo-db
 * knows ('label'), else the rule's choice, 'extrapolated' — a release the database does not know
 * (yet). Without osinfo-db the rule's choice is taken as read.
 */
function resolveReading(reading: LabelReading, known: Set<string> | null) {
  const fallback = reading.extrapolate ?? reading.shortIds[0] ?? null;
  if (fallback === null) return { shortId: null, confidence: 'label' as const };
  if (!known) return { shortId: fallback, confidence: 'label' as const };
  const found = reading.shortIds.find((id) => known.has(id));
  return found
    ? { shortId: found, confidence: 'label' as const }
    : { shortId: fallback, confidence: 'extrapolated' as const };
}

function osinfoOptions(db: OsinfoDatabase, fields: IsoFields) {
  const exact: Option[] = [];
  const catchAll: Option[] = [];
  const placeholders: Option[] = [];
  for (const { rule, fieldsMatched } of db.match(fields)) {
    const option: Option = {
      source: 'osinfo',
      rule: `osinfo:${rule.shortId}`,
      os: fromOsinfo(rule),
      confidence: 'exact',
      osinfoId: rule.osId,
      releaseDate: rule.releaseDate,
      pinned: rule.volumeSize !== null,
      fieldsMatched,
      shortIds: [rule.shortId],
    };
    if (isPlaceholder(rule)) placeholders.push(option);
    else if (isCatchAll(rule)) catchAll.push(option);
    else exact.push(option);
  }
  return { exact, catchAll, placeholders };
}

function readingOptions(fields: IsoFields, known: Set<string> | null, createdAt: Date | null) {
  const releases: Option[] = [];
  const familyOnly: Option[] = [];
  for (const rule of FAMILY_RULES) {
    const match = rule.volumeId.exec(fields.volumeId);
    if (!match) continue;
    if (rule.publisherId && !rule.publisherId.test(fields.publisherId ?? '')) continue;
    if (rule.applicationId && !rule.applicationId.test(fields.applicationId ?? '')) continue;
    let reading = rule.read(match, fields);
    if (!reading) continue;
    const pre = reading.preRelease;
    if (pre && createdAt && createdAt.getTime() < Date.parse(pre.before)) {
      reading = {
        os: { ...reading.os, version: pre.version, name: `${reading.os.name} (pre-release)` },
        shortIds: [pre.shortId],
      };
    }
    const { shortId, confidence } = resolveReading(reading, known);
    const option: Option = {
      source: 'builtin',
      rule: `builtin:${rule.id}`,
      os: { ...reading.os, shortId },
      confidence,
      osinfoId: null,
      releaseDate: rule.releaseDate ?? null,
      pinned: false,
      fieldsMatched: 1,
      shortIds: reading.shortIds,
    };
    (shortId === null ? familyOnly : releases).push(option);
  }
  return { releases, familyOnly };
}

const distinct = (options: Option[]): Option[] => {
  const seen = new Set<string>();
  return options.filter((o) => {
    const key = o.os.shortId ?? o.rule;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
};

/**
 * The one release several options agree on, or null when they name more than one. Precision
 * decides, in order: a volume size osinfo-db pins, more descriptors matched, what the label reads;
 * only then the ISO's creation date, and only between releases the label cannot tell apart.
 */
function decide(options: Option[], readings: Option[], createdAt: Date | null): Option | null {
  let pool = distinct(options);
  if (pool.length > 1 && pool.some((o) => o.pinned)) pool = distinct(pool.filter((o) => o.pinned));
  if (pool.length > 1) {
    const most = Math.max(...pool.map((o) => o.fieldsMatched));
    pool = pool.filter((o) => o.fieldsMatched === most);
  }
  if (pool.length > 1 && readings.length > 0) {
    const read = new Set(readings.flatMap((r) => r.shortIds));
    const agreed = pool.filter((o) => o.os.shortId !== null && read.has(o.os.shortId));
    if (agreed.length > 0) pool = agreed;
  }
  if (pool.length > 1 && createdAt) {
    // Releases of the same OS sharing a label (Windows 10 and 11, Server 2016 to 2025): the newest
    // one already out — or about to be — when the ISO was made. Readings take part, so a release
    // newer than osinfo-db (Server 2025) can still be chosen.
    const distributions = new Set(pool.map((o) => o.os.distribution));
    const sameOs = distinct([
      ...pool,
      ...readings.filter((r) => distributions.has(r.os.distribution) && r.releaseDate !== null),
    ]);
    const latest = createdAt.getTime() + MASTERING_LEAD_MS;
    const possible = sameOs.filter((o) => o.releaseDate !== null && Date.parse(o.releaseDate) <= latest);
    possible.sort((a, b) => (b.releaseDate ?? '').localeCompare(a.releaseDate ?? ''));
    if (possible[0] && possible[0].releaseDate !== possible[1]?.releaseDate) pool = [possible[0]];
  }
  return pool.length === 1 ? (pool[0] as Option) : null;
}

const describe = (os: IdentifiedOs): string => `${os.distribution ?? os.family}${os.version ? ` ${os.version}` : ''}`;

/** "Microsoft Windows" from "Microsoft Windows 10" and "Microsoft Windows 11". */
function commonName(names: (string | null)[]): string | null {
  const words = names.map((n) => (n ?? '').split(' '));
  const first = words[0] ?? [];
  let length = 0;
  while (length < first.length && words.every((w) => w[length] === first[length])) length += 1;
  return length > 0 ? first.slice(0, length).join(' ') : null;
}

/** What several options agree on when they disagree on the release: the family, without a version. */
function familyAnswer(options: Option[]): IdentifiedOs {
  const same = <T>(values: T[]): T | null => (values.every((v) => v === values[0]) ? (values[0] ?? null) : null);
  const distribution = same(options.map((o) => o.os.distribution));
  return {
    family: same(options.map((o) => o.os.family)) ?? 'unknown',
    distribution,
    version: null,
    arch: same(options.map((o) => o.os.arch)),
    name: distribution === null ? null : commonName(options.map((o) => o.os.name)),
    purpose: same(options.map((o) => o.os.purpose)),
    language: same(options.map((o) => o.os.language)),
    shortId: null,
  };
}

function toIdentification(
  chosen: IdentifiedOs,
  source: IdentificationSource,
  rule: string | null,
  confidence: OsConfidence | null,
  osinfoVersion: string | null,
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
      shortId: chosen.shortId,
      confidence,
      osinfoVersion,
    },
    name: chosen.name,
    purpose: chosen.purpose,
    language: chosen.language,
    source,
    rule,
    shortId: chosen.shortId,
    confidence,
    osinfoVersion,
    osinfoId: extra.osinfoId ?? null,
    versionFrom: extra.versionFrom ?? null,
    alternatives: extra.alternatives ?? [],
  };
}

/** Rules of the options left out, one per release. */
function alternativesTo(chosen: IdentifiedOs | null, options: Option[]): string[] {
  const seen = new Set(chosen ? [describe(chosen)] : []);
  const alternatives: string[] = [];
  for (const option of options) {
    const label = describe(option.os);
    if (seen.has(label)) continue;
    if (chosen?.version && option.os.version?.startsWith(`${chosen.version}.`)) continue;
    seen.add(label);
    alternatives.push(option.rule);
  }
  return alternatives;
}

/** The built-in table's media that are no OS release (drivers, cloud-init seeds, appliances). */
function otherMedia(fields: IsoFields, osinfoVersion: string | null): OsIdentification | null {
  for (const rule of BUILTIN_RULES) {
    const match = rule.volumeId.exec(fields.volumeId);
    if (match) return toIdentification(rule.identify(match), 'builtin', `builtin:${rule.id}`, 'label', osinfoVersion);
  }
  return null;
}

/** The OS the descriptors name, from osinfo-db and the family rules; null when neither knows them. */
function identifyDescriptors(iso: IsoIdentity, db: OsinfoDatabase | null): OsIdentification | null {
  const fields = fieldsOf(iso);
  if (fields.volumeId === '' && !fields.publisherId && !fields.applicationId) return null;
  const osinfoVersion = db?.dbVersion ?? null;
  const known = db ? knownIdsOf(db) : null;
  const fromDb = db ? osinfoOptions(db, fields) : { exact: [], catchAll: [], placeholders: [] };
  const createdAt = iso.createdAt ?? null;
  const { releases, familyOnly } = readingOptions(fields, known, createdAt);
  const all = [...fromDb.exact, ...releases, ...fromDb.catchAll];

  // Precision decides the tier: an exact osinfo-db entry, then the release the label reads, then
  // osinfo-db's catch-alls; a tier that cannot agree on one release answers the family alone.
  for (const tier of [fromDb.exact, releases, fromDb.catchAll]) {
    if (tier.length === 0) continue;
    const chosen = decide(tier, releases, createdAt);
    if (!chosen) {
      const family = familyAnswer(distinct(tier));
      return toIdentification(family, tier[0]?.source ?? 'builtin', null, tier[0]?.confidence ?? null, osinfoVersion, {
        alternatives: alternativesTo(null, tier),
      });
    }
    const alternatives = alternativesTo(chosen.os, all);
    if (chosen.source === 'builtin') {
      return toIdentification(chosen.os, 'builtin', chosen.rule, chosen.confidence, osinfoVersion, { alternatives });
    }
    // osinfo-db has one entry for all of Rocky 9 or AlmaLinux 9; the label says which minor release.
    const refinement = releases.find(
      (r) =>
        chosen.os.shortId !== null &&
        r.shortIds.includes(chosen.os.shortId) &&
        chosen.os.version !== null &&
        r.os.version?.startsWith(`${chosen.os.version}.`),
    );
    const os = refinement ? { ...chosen.os, version: refinement.os.version, name: refinement.os.name } : chosen.os;
    return toIdentification(os, 'osinfo', chosen.rule, 'exact', osinfoVersion, {
      osinfoId: chosen.osinfoId,
      versionFrom: refinement?.rule ?? null,
      alternatives,
    });
  }
  const other = otherMedia(fields, osinfoVersion);
  if (other) return other;
  const named = familyOnly[0] ?? fromDb.placeholders[0];
  if (!named) return null;
  // The family without a release: from a label that names none (Slackware's SlackDVD), or from
  // osinfo-db's "-unknown" entry for a release it does not know and no rule could read.
  return toIdentification({ ...named.os, version: null }, named.source, named.rule, named.confidence, osinfoVersion, {
    osinfoId: named.osinfoId,
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
 * Identifies the OS of an ISO: osinfo-db's patterns and the family rules on what the ISO says
 * about itself, then the file name as a last resort. Never throws for unknown media: the result
 * is then family 'unknown' with source 'none'.
 */
export function identifyOs(options: IdentifyOsOptions): OsIdentification {
  const fromDescriptors = options.iso ? memoized(options.iso, options.osinfo) : null;
  // A family without a release loses to a file name that names one.
  if (fromDescriptors && (fromDescriptors.shortId !== null || !options.fileName)) return fromDescriptors;
  const osinfoVersion = options.osinfo?.dbVersion ?? null;
  if (options.fileName) {
    const name = basename(options.fileName);
    for (const rule of FILENAME_RULES) {
      const match = rule.pattern.exec(name);
      if (!match) continue;
      const found = rule.identify(match);
      // The name must not contradict the descriptors: same distribution, or descriptors that named none.
      if (fromDescriptors && fromDescriptors.os.distribution !== found.distribution) break;
      return toIdentification(found, 'filename', `filename:${rule.id}`, 'filename', osinfoVersion);
    }
  }
  if (fromDescriptors) return fromDescriptors;
  return toIdentification(
    {
      family: 'unknown',
      distribution: null,
      version: null,
      arch: null,
      name: null,
      purpose: null,
      language: null,
      shortId: null,
    },
    'none',
    null,
    null,
    osinfoVersion,
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
