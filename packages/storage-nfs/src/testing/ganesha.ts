import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** scripts/nfs-server.sh of this repository. */
export const NFS_SERVER_SCRIPT = fileURLToPath(new URL('../../../../scripts/nfs-server.sh', import.meta.url));

/** A loopback nfs-ganesha for integration tests, driven through scripts/nfs-server.sh. */
export interface NfsTestServer {
  readonly exportDir: string;
  readonly server: '127.0.0.1';
  /** (Re)starts ganesha exporting exportDir; resolves once showmount lists the export. */
  start(): Promise<void>;
  /** Stops ganesha (its PID only; rpcbind stays). */
  stop(): Promise<void>;
  /** SIGSTOP: the process stays, its sockets accept, nothing answers — a hung server. */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): Promise<void>;
}

async function script(...args: string[]): Promise<string> {
  try {
    // The first start on a fresh machine installs the packages, which takes a while.
    const { stdout } = await exec('bash', [NFS_SERVER_SCRIPT, ...args], { timeout: 300_000 });
    return stdout.trim();
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    // Never a skip: a test that needs the server fails, and says how to get it.
    throw new Error(
      `nfs-ganesha is required for this test and 'scripts/nfs-server.sh ${args.join(' ')}' failed: ${stderr?.trim() || message}. ` +
        'It needs root and Debian packages nfs-ganesha, nfs-ganesha-vfs, rpcbind, nfs-common (the script installs them).',
      { cause: error },
    );
  }
}

async function pid(): Promise<number> {
  const value = Number.parseInt(await script('pid'), 10);
  if (!Number.isInteger(value) || value <= 0) throw new Error('nfs-ganesha is not running');
  return value;
}

/** Starts ganesha exporting `exportDir` on 127.0.0.1 and returns handles to stop, pause and resume it. */
export async function startNfsTestServer(exportDir: string): Promise<NfsTestServer> {
  const server: NfsTestServer = {
    exportDir,
    server: '127.0.0.1',
    start: async () => {
      await script('start', exportDir);
    },
    stop: async () => {
      await script('stop');
    },
    pause: async () => {
      process.kill(await pid(), 'SIGSTOP');
    },
    resume: async () => {
      process.kill(await pid(), 'SIGCONT');
    },
  };
  await server.start();
  return server;
}
