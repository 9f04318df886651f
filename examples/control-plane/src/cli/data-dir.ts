import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, QuantixError } from '@quantix/core/light';

export const LOCK_FILE = 'quantix.lock';

/**
 * Makes `dir` a private data directory: created 0700, refused when another user could write to
 * it (group- or world-writable: its files could have been replaced), and everything in it made
 * readable by its owner only. PGlite creates its files 0666 whatever the umask, so the modes
 * are set after the fact; the 0700 directory is what keeps other users out meanwhile.
 */
export function securePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const info = lstatSync(dir);
  if (info.isSymbolicLink() || !info.isDirectory()) {
    throw new QuantixError(
      ErrorCode.DATA_DIR_INSECURE,
      `Data directory ${dir} is not a directory of its own (a link?)`,
      {
        details: { dir },
      },
    );
  }
  if (info.mode & 0o022) {
    throw new QuantixError(
      ErrorCode.DATA_DIR_INSECURE,
      `Data directory ${dir} can be written by other users (mode ${(info.mode & 0o777).toString(8)}); ` +
        `check nothing in it was changed, then run: chmod 700 ${dir}`,
      { details: { dir, mode: info.mode & 0o777 } },
    );
  }
  if (typeof process.getuid === 'function' && info.uid !== process.getuid()) {
    throw new QuantixError(
      ErrorCode.DATA_DIR_INSECURE,
      `Data directory ${dir} belongs to another user (uid ${info.uid})`,
      {
        details: { dir, uid: info.uid },
      },
    );
  }
  restrictModes(dir);
}

/** Removes group and other permissions from `dir` and everything below it that this user owns. */
export function restrictModes(dir: string): void {
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  const walk = (path: string) => {
    let info: ReturnType<typeof lstatSync>;
    try {
      info = lstatSync(path);
    } catch {
      return; // removed meanwhile
    }
    if (info.isSymbolicLink() || (uid !== null && info.uid !== uid)) return;
    if (info.mode & 0o077) chmodSync(path, info.mode & 0o700);
    if (info.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(dir);
}

export interface DataDirLock {
  readonly path: string;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, it is someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the data directory for this process: a lock file created exclusively, holding our pid.
 * A second process is refused with DATA_DIR_LOCKED naming the first one's pid; a lock left by a
 * process that is gone (SIGKILL, a crash) is taken over.
 */
export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        path,
        release() {
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
          } catch {
            // already gone
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      // removed between our open and read: try again
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new QuantixError(
        ErrorCode.DATA_DIR_LOCKED,
        `Data directory ${dir} is in use by process ${holder}; stop it first, or use another --data-dir`,
        { details: { dir, pid: holder } },
      );
    }
    // Stale (its process is gone) or unreadable: remove it and take it, if nobody else did first.
    const before = statSync(path, { throwIfNoEntry: false });
    if (before) rmSync(path, { force: true });
  }
  throw new QuantixError(
    ErrorCode.DATA_DIR_LOCKED,
    `Could not take the lock ${path}; another process keeps taking it`,
    {
      details: { dir },
    },
  );
}
