/**
 * A PostgreSQL server of the test's own — initdb into a temporary directory, on a free port,
 * listening on loopback only — so that a test can restart or stop it without touching the
 * machine's shared server that other tests use at the same time.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../processes.js';

const run = promisify(execFile);

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error(`no PostgreSQL server under ${root}; run scripts/services.sh postgres`);
  return join(root, versions[0], 'bin');
}

export interface PrivatePostgres {
  port: number;
  /** postgres://…@127.0.0.1:port/postgres, trust authentication. */
  url: string;
  /** `pg_ctl restart -m fast`: every connection is closed, the server is back after a moment. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  dispose(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'quantix-pg-'));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  // The server refuses to run as root: as root, it runs as the postgres user.
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const pg = (tool: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { timeout: 120_000 })
      : run(join(bin, tool), args, { timeout: 120_000 });
  await pg('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const ctl = (action: string, extra: string[] = []) =>
    pg('pg_ctl', [action, '-D', dataDir, '-w', '-t', '60', '-o', options, '-l', join(dir, 'server.log'), ...extra]);
  await ctl('start');
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: async () => {
      await ctl('restart', ['-m', 'fast']);
    },
    stop: async () => {
      await pg('pg_ctl', ['stop', '-D', dataDir, '-w', '-m', 'fast']);
    },
    start: async () => {
      await ctl('start');
    },
    dispose: async () => {
      await pg('pg_ctl', ['stop', '-D', dataDir, '-w', '-m', 'immediate']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
