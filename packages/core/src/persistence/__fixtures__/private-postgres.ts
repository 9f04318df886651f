/**
 * A PostgreSQL server of the test's own: initdb into a temporary directory, on a free port,
 * loopback only, with server settings of the test's choosing (e.g. lc_messages) — the machine's
 * shared server, which other tests use at the same time, keeps its own.
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function postgresBin(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await readdir(root).catch(() => [] as string[]))
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) {
    throw new Error(`This test needs the PostgreSQL server binaries under ${root}: apt-get install -y postgresql`);
  }
  return join(root, versions[0], 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:port/postgres, trust authentication. */
  url: string;
  dispose(): Promise<void>;
}

/** Starts a server with `settings` as `-c name=value` options. */
export async function startPrivatePostgres(settings: Record<string, string> = {}): Promise<PrivatePostgres> {
  const bin = await postgresBin();
  const dir = await mkdtemp(join(tmpdir(), 'quantix-pg-'));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  // The server refuses to run as root; as root it runs as the postgres user.
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
  }
  const pg = (tool: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { timeout: 120_000 })
      : run(join(bin, tool), args, { timeout: 120_000 });
  const stop = () => pg('pg_ctl', ['stop', '-D', dataDir, '-w', '-m', 'immediate']).catch(() => undefined);
  try {
    await pg('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '--locale=C.UTF-8']);
    const extra = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
    // pg_ctl's -o is one string the server splits on spaces: settings must not contain any.
    for (const word of extra) if (/\s/.test(word)) throw new Error(`a server setting with a space: ${word}`);
    const options = ['-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', ...extra];
    await pg('pg_ctl', ['start', '-D', dataDir, '-w', '-t', '60', '-l', join(dir, 'server.log'), '-o', options.join(' ')]);
  } catch (error) {
    await stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async dispose() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
