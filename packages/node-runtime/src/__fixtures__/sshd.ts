/**
 * Test support: a throwaway real sshd (OpenSSH, foreground) with a host key of its own, for the
 * tests that change a host's key, cut connections or start a server late. It accepts the test
 * key pair of scripts/services.sh, so `requireServices('sshd')` must pass first.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@quantix/core/testing';
import { publicKeyFingerprint } from '../ssh/fingerprint.js';
import { TEST_SSH, waitFor } from './services.js';

const run = promisify(execFile);

export class ThrowawaySshd {
  private child: ChildProcess | null = null;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly extraConfig: string[],
  ) {}

  /** `extraConfig`: more sshd_config lines (e.g. `SetEnv BASH_ENV=…` for a noisy login shell). */
  static async create(options: { extraConfig?: string[] } = {}): Promise<ThrowawaySshd> {
    const dir = await mkdtemp(join(tmpdir(), 'quantix-sshd-'));
    const sshd = new ThrowawaySshd(dir, await freePort(), options.extraConfig ?? []);
    await sshd.newHostKey();
    return sshd;
  }

  /** Replaces the host key (takes effect at the next start): the host "was reinstalled". */
  async newHostKey(): Promise<string> {
    const key = join(this.dir, 'host_key');
    await rm(key, { force: true });
    await rm(`${key}.pub`, { force: true });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'throwaway', '-f', key]);
    return this.fingerprint();
  }

  async fingerprint(): Promise<string> {
    return publicKeyFingerprint(await readFile(join(this.dir, 'host_key.pub'), 'utf8'));
  }

  async start(): Promise<void> {
    const config = join(this.dir, 'sshd_config');
    await writeFile(
      config,
      [
        `Port ${this.port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(this.dir, 'host_key')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'UsePAM no',
        'StrictModes no',
        `AuthorizedKeysFile ${TEST_SSH.dir}/authorized_keys`,
        `PidFile ${join(this.dir, 'sshd.pid')}`,
        ...(this.extraConfig.some((l) => l.startsWith('SetEnv')) ? [] : ['SetEnv SHLVL=1']),
        ...this.extraConfig,
        '',
      ].join('\n'),
    );
    const child = spawn('/usr/sbin/sshd', ['-D', '-f', config, '-E', join(this.dir, 'sshd.log')], { stdio: 'ignore' });
    this.child = child;
    const up = await waitFor(() => accepts(this.port), 10_000);
    if (!up) throw new Error(`throwaway sshd did not listen on ${this.port}: ${await this.log()}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  /** Kills this sshd's per-connection processes: every client is cut off, the listener stays. */
  async dropConnections(): Promise<number> {
    const listener = this.child?.pid;
    if (!listener) return 0;
    let killed = 0;
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === listener) {
          process.kill(Number(entry), 'SIGKILL');
          killed++;
        }
      } catch {
        // Gone meanwhile.
      }
    }
    return killed;
  }

  async log(): Promise<string> {
    return readFile(join(this.dir, 'sshd.log'), 'utf8').catch(() => '');
  }

  async dispose(): Promise<void> {
    // The listener's exit does not wait for its per-connection processes, and one that is still
    // starting opens its log (`-E`) in this directory again: cut them first, and retry the
    // removal while one of them is still on its way out (ENOTEMPTY, seen under load).
    await this.dropConnections();
    await this.stop();
    await rm(this.dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}


function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}
