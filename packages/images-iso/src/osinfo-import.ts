import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type CommandRunner, ErrorCode, LocalCommandRunner, QuantixError } from '@quantix/core';
import { clearOsinfoDatabaseCache, defaultOsinfoImportDir, loadOsinfoDatabase } from './osinfo.js';

/**
 * Importing an osinfo-db release (osinfo-db-YYYYMMDD.tar.xz from releases.pagure.org/libosinfo)
 * so that identification knows releases newer than the distribution's osinfo-db package. The
 * archive is checked before anything is written where the database goes: only plain files and
 * directories, no absolute or `..` paths, bounded in size; it is unpacked beside the target, must
 * hold os/ and VERSION and load, and only then replaces the target directory.
 */

/** $XDG_DATA_HOME/quantix/osinfo (~/.local/share/quantix/osinfo): where imported releases go unless told otherwise. */

export interface ImportOsinfoArchiveOptions {
  /** The release archive, a `.tar.xz` as osinfo-db publishes it (one top directory, or none). */
  file: string;
  /** Where the database is to be; replaced whole. Load it with loadOsinfo({ dir }). Default: defaultOsinfoImportDir(). */
  dir?: string;
  /** Runs tar. Default: this machine's. */
  runner?: CommandRunner;
  signal?: AbortSignal;
}

export interface ImportedOsinfo {
  dir: string;
  /** The imported release's VERSION (its date, e.g. 20250606). */
  dbVersion: string;
  /** The VERSION of the database the import replaced, null when there was none. */
  previousVersion: string | null;
  /** ISO media entries the imported database holds. */
  mediaEntries: number;
}

/** A release unpacks to about 30 MB in ~2,000 files; far more is not an osinfo-db archive. */
const MAX_UNPACKED_BYTES = 512 * 1024 * 1024;
const MAX_ENTRIES = 50_000;
const TAR_TIMEOUT_MS = 120_000;

function invalidArchive(file: string, why: string): QuantixError {
  return new QuantixError(ErrorCode.INVALID_INPUT, `${file} is not an osinfo-db release archive: ${why}`, {
    details: { file },
  });
}

/** Imports the archive into `dir` (see the module comment) and returns what is there now. */
export async function importOsinfoArchive(options: ImportOsinfoArchiveOptions): Promise<ImportedOsinfo> {
  const { file, signal } = options;
  const dir = options.dir ?? defaultOsinfoImportDir();
  const runner = options.runner ?? new LocalCommandRunner();
  try {
    const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT')
        throw new QuantixError(ErrorCode.NOT_FOUND, `${file} does not exist`, { details: { file } });
      throw error;
    });
    if (!info.isFile()) throw invalidArchive(file, 'not a file');
    await checkListing(file, runner, signal);
    const previousVersion = await existingDatabaseVersion(dir);

    // Unpacked beside the target, so that putting it in place is a rename on one file system.
    await mkdir(dirname(dir), { recursive: true });
    const staging = await mkdtemp(join(dirname(dir), `.${basename(dir)}.import-`));
    try {
      await runner.run({
        argv: ['tar', '-xJf', file, '-C', staging, '--no-same-owner', '--no-same-permissions'],
        timeoutMs: TAR_TIMEOUT_MS,
        signal,
      });
      const root = await databaseRoot(file, staging);
      const dbVersion = (await readFile(join(root, 'VERSION'), 'utf8').catch(() => '')).trim();
      if (!dbVersion) throw invalidArchive(file, 'no VERSION file');
      const loaded = await loadOsinfoDatabase({ dir: root, cacheDir: false });
      if (!loaded || loaded.rules.length === 0) throw invalidArchive(file, 'its os/ holds no ISO media entries');
      signal?.throwIfAborted();
      // mkdtemp made the staging directory private; the database is read by whoever scans.
      await chmod(root, 0o755);
      await replaceDirectory(root, dir);
      // Processes that loaded the old database reload it on their next call.
      clearOsinfoDatabaseCache();
      return { dir, dbVersion, previousVersion, mediaEntries: loaded.rules.length };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  } finally {
    if (!options.runner) await runner.close();
  }
}

/** Refuses, before unpacking, members that could write outside the target or are not plain files and directories. */
async function checkListing(file: string, runner: CommandRunner, signal: AbortSignal | undefined): Promise<void> {
  const { stdout } = await runner.run({
    argv: ['tar', '-tvJf', file, '--numeric-owner', '--quoting-style=escape'],
    timeoutMs: TAR_TIMEOUT_MS,
    maxOutputBytes: 64 * 1024 * 1024,
    signal,
  });
  const lines = stdout.split('\n').filter((line) => line !== '');
  if (lines.length === 0) throw invalidArchive(file, 'it is empty');
  if (lines.length > MAX_ENTRIES) throw invalidArchive(file, `more than ${MAX_ENTRIES} members`);
  let bytes = 0;
  for (const line of lines) {
    // -rw-r--r-- 0/0   1234 2025-06-06 10:00 osinfo-db-20250606/os/fedoraproject.org/fedora-41.xml
    const member = /^(?<type>\S)\S*\s+\S+\s+(?<size>\d+)\s+\S+\s+\S+\s(?<name>.*)$/.exec(line)?.groups;
    if (!member) throw invalidArchive(file, `unreadable listing line ${JSON.stringify(line)}`);
    const name = member.name as string;
    if (member.type !== '-' && member.type !== 'd') {
      throw invalidArchive(file, `${JSON.stringify(name)} is a link or a special file`);
    }
    if (name.startsWith('/') || name.split('/').includes('..')) {
      throw invalidArchive(file, `${JSON.stringify(name)} points outside the archive`);
    }
    bytes += Number(member.size);
    if (bytes > MAX_UNPACKED_BYTES) throw invalidArchive(file, `it unpacks to more than ${MAX_UNPACKED_BYTES} bytes`);
  }
}

/** The unpacked database: the staging directory itself, or the one top directory it holds. */
async function databaseRoot(file: string, staging: string): Promise<string> {
  const isDir = (path: string) =>
    lstat(path).then(
      (s) => s.isDirectory(),
      () => false,
    );
  if (await isDir(join(staging, 'os'))) return staging;
  const entries = await readdir(staging);
  const only = entries.length === 1 ? join(staging, entries[0] as string) : null;
  if (only && (await isDir(join(only, 'os')))) return only;
  throw invalidArchive(file, 'no os/ directory at its top');
}

/** The VERSION of the database at `dir`; refuses a `dir` that holds something else, so an import never deletes it. */
async function existingDatabaseVersion(dir: string): Promise<string | null> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (entries === null || entries.length === 0) return null;
  if (!entries.includes('os')) {
    throw new QuantixError(
      ErrorCode.ALREADY_EXISTS,
      `${dir} holds files that are not an osinfo-db; an import would replace them`,
      { details: { dir } },
    );
  }
  return (await readFile(join(dir, 'VERSION'), 'utf8').catch(() => '')).trim() || null;
}

/** Puts `from` at `to`; the old `to` is moved aside first and put back if that fails. */
async function replaceDirectory(from: string, to: string): Promise<void> {
  const aside = `${to}.old-${randomBytes(6).toString('hex')}`;
  const hadOld = await rename(to, aside).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
  try {
    await rename(from, to);
  } catch (error) {
    if (hadOld) await rename(aside, to);
    throw error;
  }
  if (hadOld) await rm(aside, { recursive: true, force: true });
}
