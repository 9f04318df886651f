import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeFileAtomic } from '@quantix/core';
import { compileGlibRegex, GlibRegexError, requiredLiteral } from './glib-regex.js';
import { childrenNamed, childText, parseXml, type XmlElement, XmlError } from './xml.js';

/**
 * osinfo-db (libosinfo's database, Debian package `osinfo-db`) describes installation media of
 * about 900 OS releases; for ISOs it gives GRegex patterns for the volume, system, publisher and
 * application ids, and sometimes the exact volume size. This module loads those patterns once,
 * lazily, translates them to JavaScript (glib-regex.ts) and matches ISO descriptors against them
 * as libosinfo does: every field a media entry names must match (an unanchored search), and a
 * volume size, when given, must be equal.
 */

/** Where `quantix osinfo import` puts a release archive by default: $XDG_DATA_HOME/quantix/osinfo. */
export function defaultOsinfoImportDir(): string {
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'quantix', 'osinfo');
}

/**
 * Where osinfo-db lives: $OSINFO_SYSTEM_DIR (as libosinfo reads it); else a release the operator
 * imported (`quantix osinfo import`, newer than the packaged one by intent); else Debian's location.
 */
export function defaultOsinfoDir(): string {
  if (process.env.OSINFO_SYSTEM_DIR) return process.env.OSINFO_SYSTEM_DIR;
  const imported = defaultOsinfoImportDir();
  return existsSync(join(imported, 'VERSION')) ? imported : '/usr/share/osinfo';
}

/** $QUANTIX_CACHE_DIR, else $XDG_CACHE_HOME/quantix, else ~/.cache/quantix. */
export function defaultOsinfoCacheDir(): string {
  if (process.env.QUANTIX_CACHE_DIR) return process.env.QUANTIX_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'quantix');
}

/** One ISO media entry of one OS, as stored in the cache file. */
export interface OsinfoMediaRule {
  /** e.g. 'http://ubuntu.com/ubuntu/22.04' */
  osId: string;
  shortId: string;
  name: string;
  version: string | null;
  /** osinfo's family: linux, winnt, freebsd, … */
  family: string | null;
  distro: string | null;
  releaseDate: string | null;
  arch: string | null;
  live: boolean;
  volumeId: string | null;
  systemId: string | null;
  publisherId: string | null;
  applicationId: string | null;
  volumeSize: number | null;
}

/** The descriptor fields an ISO is matched on. */
export interface IsoFields {
  volumeId: string;
  systemId?: string;
  publisherId?: string;
  applicationId?: string;
  volumeSizeBytes?: number;
}

export interface OsinfoMatch {
  rule: OsinfoMediaRule;
  /** How many of the four id fields the entry constrains (more is more specific). */
  fieldsMatched: number;
}

interface CompiledRule {
  rule: OsinfoMediaRule;
  /** Text every matching volume id contains, checked before the pattern is run. */
  volumeLiteral: string | null;
  volumeId: RegExp | null;
  systemId: RegExp | null;
  publisherId: RegExp | null;
  applicationId: RegExp | null;
}

export interface SkippedPattern {
  osId: string;
  pattern: string;
  reason: string;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface OsinfoDatabase {
  dir: string;
  /** Contents of the database's VERSION file (its release date, e.g. 20221203). */
  dbVersion: string | null;
  rules: readonly OsinfoMediaRule[];
  /** Patterns that could not be translated; their media entries are left out. */
  skippedPatterns: readonly SkippedPattern[];
  /** XML files that could not be parsed; their entries are left out. */
  skippedFiles: readonly SkippedFile[];
  /** 'files' when parsed from the XML, 'cache' when read from the cache file. */
  loadedFrom: 'files' | 'cache';
  loadMs: number;
  /** Media entries whose patterns all match the ISO's fields. */
  match(fields: IsoFields): OsinfoMatch[];
}

export interface LoadOsinfoOptions {
  /** osinfo-db's root (holding os/). Default: defaultOsinfoDir(). */
  dir?: string;
  /**
   * A directory for a compiled cache of the media rules, so that a new process reads one small
   * file instead of parsing ~800 XML files. Checked against the database's VERSION file and
   * directory times, and trusted only when owned by this user and writable by no one else.
   * Default: defaultOsinfoCacheDir(); false for none.
   */
  cacheDir?: string | false;
}

/** Bumped when the cached rules change in shape or in what extractRules takes: old cache files are then ignored. */
const CACHE_FORMAT = 1;

const memo = new Map<string, Promise<OsinfoDatabase | null>>();

/**
 * The osinfo database at `dir`, loaded on first use and kept for the life of the process (one
 * load per directory, shared by every caller). Resolves to null when there is no database there;
 * identification then relies on the built-in table.
 */
export function getOsinfoDatabase(options: LoadOsinfoOptions = {}): Promise<OsinfoDatabase | null> {
  const dir = options.dir ?? defaultOsinfoDir();
  const key = `${dir}\0${options.cacheDir === undefined ? defaultOsinfoCacheDir() : options.cacheDir}`;
  let loading = memo.get(key);
  if (!loading) {
    loading = loadOsinfoDatabase({ ...options, dir });
    // A failed load is not remembered, so a later call can try again.
    loading.catch(() => memo.delete(key));
    memo.set(key, loading);
  }
  return loading;
}

/** Forgets loaded databases (tests, or after osinfo-db was upgraded in a long-running process). */
export function clearOsinfoDatabaseCache(): void {
  memo.clear();
}

/** Loads the database without the per-process memo; getOsinfoDatabase is what callers want. */
export async function loadOsinfoDatabase(options: LoadOsinfoOptions = {}): Promise<OsinfoDatabase | null> {
  const started = performance.now();
  const dir = options.dir ?? defaultOsinfoDir();
  const osDir = join(dir, 'os');
  let vendors: string[];
  try {
    vendors = (await readdir(osDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') {
      return null;
    }
    throw error;
  }
  vendors.sort();
  const dbVersion = await readFile(join(dir, 'VERSION'), 'utf8').then(
    (text) => text.trim() || null,
    () => null,
  );

  const cacheDir = options.cacheDir === undefined ? defaultOsinfoCacheDir() : options.cacheDir;
  let cacheFile: string | null = null;
  let fingerprint = '';
  if (cacheDir) {
    fingerprint = await fingerprintOf(osDir, vendors, dbVersion);
    cacheFile = join(cacheDir, `osinfo-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}.json`);
    const cached = await readCache(cacheFile, fingerprint);
    if (cached) {
      const skipped: SkippedPattern[] = [];
      const compiled = compileRules(cached.rules, skipped);
      return databaseFrom(dir, dbVersion, compiled, skipped, cached.skippedFiles ?? [], 'cache', started);
    }
  }

  const rules: OsinfoMediaRule[] = [];
  const skippedFiles: SkippedFile[] = [];
  for (const file of listXmlFiles(osDir, vendors)) {
    // Synchronous on purpose, once per process: ~800 small files read in ~30 ms this way, against
    // ~90 ms through the thread pool (four round trips per file on four threads).
    const text = readFileSync(file, 'utf8');
    // Only OS entries with ISO media matter; most files can be skipped without parsing.
    if (!text.includes('<iso>')) continue;
    try {
      rules.push(...extractRules(parseXml(text, { keep: keepForMedia })));
    } catch (error) {
      // One damaged file (a hand edit gone wrong) costs its own entries, not the whole database.
      if (!(error instanceof XmlError)) throw error;
      skippedFiles.push({ file, reason: error.message });
    }
  }
  const skipped: SkippedPattern[] = [];
  const compiled = compileRules(rules, skipped);
  if (cacheFile && cacheDir) {
    await writeCache(cacheDir, cacheFile, { format: CACHE_FORMAT, fingerprint, rules, skippedFiles }).catch(
      () => undefined, // a cache that cannot be written only costs the next process a parse
    );
  }
  return databaseFrom(dir, dbVersion, compiled, skipped, skippedFiles, 'files', started);
}

async function fingerprintOf(osDir: string, vendors: string[], dbVersion: string | null): Promise<string> {
  const hash = createHash('sha256').update(`${CACHE_FORMAT}\0${osDir}\0${dbVersion ?? ''}`);
  // Package upgrades replace files by rename, which changes their directory's mtime.
  const times = await Promise.all(vendors.map((v) => stat(join(osDir, v)).then((s) => s.mtimeMs)));
  vendors.forEach((vendor, i) => {
    hash.update(`\0${vendor}\0${times[i]}`);
  });
  return hash.digest('hex');
}

interface CacheContents {
  format: number;
  fingerprint: string;
  rules: OsinfoMediaRule[];
  skippedFiles?: SkippedFile[];
}

async function readCache(file: string, fingerprint: string): Promise<CacheContents | null> {
  try {
    // Someone else's file, or one others may write, could carry patterns chosen to mislead or stall.
    const info = await stat(file);
    if ((info.mode & 0o022) !== 0 || (process.getuid && info.uid !== process.getuid())) return null;
    const contents = JSON.parse(await readFile(file, 'utf8')) as CacheContents;
    if (contents.format !== CACHE_FORMAT || contents.fingerprint !== fingerprint || !Array.isArray(contents.rules)) {
      return null;
    }
    return contents;
  } catch {
    return null;
  }
}

async function writeCache(cacheDir: string, file: string, contents: CacheContents): Promise<void> {
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, JSON.stringify(contents), { mode: 0o600 });
}

function listXmlFiles(osDir: string, vendors: string[]): string[] {
  const files: string[] = [];
  for (const vendor of vendors) {
    const entries = readdirSync(join(osDir, vendor), { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    for (const entry of entries) {
      // <os>.d/ directories add drivers and install scripts to an OS, never media: not needed here.
      if (entry.isFile() && entry.name.endsWith('.xml')) files.push(join(osDir, vendor, entry.name));
    }
  }
  return files;
}

const OS_FIELDS = new Set(['short-id', 'name', 'version', 'family', 'distro', 'release-date', 'media']);
const ISO_FIELDS = new Set(['volume-id', 'system-id', 'publisher-id', 'application-id', 'volume-size']);

/** Builds only what extractRules reads: the OS's own fields, its media and their <iso> ids. */
function keepForMedia(
  ancestors: readonly string[],
  name: string,
  attributes: Readonly<Record<string, string>>,
): boolean {
  if (attributes['xml:lang'] !== undefined) return false; // translated names
  switch (ancestors.length) {
    case 0:
      return name === 'libosinfo';
    case 1:
      return name === 'os';
    case 2:
      return OS_FIELDS.has(name);
    case 3:
      return name === 'iso';
    case 4:
      return ISO_FIELDS.has(name);
    default:
      return false;
  }
}

function extractRules(document: XmlElement): OsinfoMediaRule[] {
  const rules: OsinfoMediaRule[] = [];
  for (const libosinfo of childrenNamed(document, 'libosinfo')) {
    for (const os of childrenNamed(libosinfo, 'os')) {
      const osId = os.attributes.id ?? '';
      const shortId = childText(os, 'short-id') ?? osId;
      const base = {
        osId,
        shortId,
        name: childText(os, 'name') ?? shortId,
        version: childText(os, 'version'),
        family: childText(os, 'family'),
        distro: childText(os, 'distro'),
        releaseDate: childText(os, 'release-date'),
      };
      for (const media of childrenNamed(os, 'media')) {
        for (const iso of childrenNamed(media, 'iso')) {
          const size = childText(iso, 'volume-size');
          rules.push({
            ...base,
            arch: media.attributes.arch ?? null,
            live: media.attributes.live === 'true',
            volumeId: childText(iso, 'volume-id'),
            systemId: childText(iso, 'system-id'),
            publisherId: childText(iso, 'publisher-id'),
            applicationId: childText(iso, 'application-id'),
            volumeSize: size !== null && /^\d+$/.test(size) ? Number(size) : null,
          });
        }
      }
    }
  }
  return rules;
}

function compileRules(rules: readonly OsinfoMediaRule[], skipped: SkippedPattern[]): CompiledRule[] {
  // Many entries share a pattern (one per architecture, or per release of a family): translate each once.
  const cache = new Map<string, RegExp>();
  const literals = new Map<RegExp, string | null>();
  const compile = (pattern: string | null): RegExp | null => {
    if (pattern === null || pattern === '') return null;
    let regex = cache.get(pattern);
    if (!regex) {
      regex = compileGlibRegex(pattern);
      cache.set(pattern, regex);
    }
    return regex;
  };
  const literalOf = (regex: RegExp): string | null => {
    let literal = literals.get(regex);
    if (literal === undefined) {
      literal = requiredLiteral(regex.source, regex.flags);
      literals.set(regex, literal);
    }
    return literal;
  };
  const compiled: CompiledRule[] = [];
  for (const rule of rules) {
    // An entry without any id pattern would match every ISO; libosinfo never matches on size alone.
    if (!rule.volumeId && !rule.systemId && !rule.publisherId && !rule.applicationId) continue;
    try {
      const volumeId = compile(rule.volumeId);
      compiled.push({
        rule,
        volumeLiteral: volumeId ? literalOf(volumeId) : null,
        volumeId,
        systemId: compile(rule.systemId),
        publisherId: compile(rule.publisherId),
        applicationId: compile(rule.applicationId),
      });
    } catch (error) {
      if (!(error instanceof GlibRegexError)) throw error;
      skipped.push({ osId: rule.osId, pattern: rule.volumeId ?? '', reason: error.message });
    }
  }
  return compiled;
}

const test = (regex: RegExp | null, value: string | undefined): boolean =>
  regex === null || (value !== undefined && regex.test(value));

function databaseFrom(
  dir: string,
  dbVersion: string | null,
  compiled: CompiledRule[],
  skipped: SkippedPattern[],
  skippedFiles: SkippedFile[],
  loadedFrom: OsinfoDatabase['loadedFrom'],
  started: number,
): OsinfoDatabase {
  return {
    dir,
    dbVersion,
    rules: compiled.map((c) => c.rule),
    skippedPatterns: skipped,
    skippedFiles,
    loadedFrom,
    loadMs: performance.now() - started,
    match(fields) {
      const matches: OsinfoMatch[] = [];
      for (const candidate of compiled) {
        if (candidate.volumeLiteral !== null && !fields.volumeId.includes(candidate.volumeLiteral)) continue;
        if (!test(candidate.volumeId, fields.volumeId)) continue;
        if (!test(candidate.systemId, fields.systemId)) continue;
        if (!test(candidate.publisherId, fields.publisherId)) continue;
        if (!test(candidate.applicationId, fields.applicationId)) continue;
        const size = candidate.rule.volumeSize;
        if (size !== null && size !== fields.volumeSizeBytes) continue;
        const fieldsMatched = [
          candidate.volumeId,
          candidate.systemId,
          candidate.publisherId,
          candidate.applicationId,
        ].filter((r) => r !== null).length;
        matches.push({ rule: candidate.rule, fieldsMatched });
      }
      return matches;
    },
  };
}
