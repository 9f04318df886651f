import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CommandRunner, ErrorCode, LocalCommandRunner } from '@quantix/core';
import { freePort, requireLocale } from '@quantix/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  processGone,
  rejection,
  requireServices,
  TEST_SSH,
  TEST_SSH_HOST_PUBLIC_KEY,
  TEST_SSH_KEY,
  testSshRunnerOptions,
  waitFor,
} from '../__fixtures__/services.js';
import { ThrowawaySshd } from '../__fixtures__/sshd.js';
import { NodeRuntimeErrorCode } from '../errors.js';
import { hostileArguments } from './hostile.js';
import { SshCommandRunner } from './runner.js';

// Real sshd on loopback (scripts/services.sh sshd), logging in as root with the test key; the
// remote side is this machine, so the tests look at its files and processes to see what ran.

const exec = promisify(execFile);
const GERMAN = 'de_DE.UTF-8';

function nulSeparated(stdout: string): string[] {
  return stdout.split('\0').slice(0, -1);
}

describe('SshCommandRunner against a real sshd', () => {
  let runner: SshCommandRunner;
  let dir: string;
  let hostFingerprint: string;

  beforeAll(async () => {
    await requireServices('sshd');
    dir = await mkdtemp(join(tmpdir(), 'quantix-ssh-'));
    runner = new SshCommandRunner(testSshRunnerOptions());
    // What a person would pin: the fingerprint ssh-keygen prints for the host's key.
    hostFingerprint = (await exec('ssh-keygen', ['-lf', TEST_SSH_HOST_PUBLIC_KEY])).stdout.split(' ')[1] as string;
  });
  afterAll(async () => {
    await runner?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes output to onOutput as it arrives, before the remote command ends', async () => {
    // The remote command waits for a file that only onOutput creates once it has seen the first
    // line: output held back until the end would leave it waiting until its timeout.
    const marker = join(dir, 'seen-first');
    const seen: string[] = [];
    const result = await runner.run({
      argv: ['sh', '-c', 'echo first; while [ ! -e "$1" ]; do sleep 0.02; done; echo second >&2', 'sh', marker],
      timeoutMs: 10_000,
      onOutput: (stream, chunk) => {
        seen.push(`${stream}:${chunk.toString()}`);
        if (chunk.toString().includes('first')) void writeFile(marker, '');
      },
    });
    expect(seen).toEqual(['stdout:first\n', 'stderr:second\n']);
    expect(result).toMatchObject({ stdout: 'first\n', stderr: 'second\n' });
  });

  it('runs every command over one persistent connection, with exit code, stdout and stderr', async () => {
    const results = [];
    for (let i = 0; i < 5; i++)
      results.push(await runner.run({ argv: ['sh', '-c', `echo out${i}; echo err${i} >&2`] }));
    expect(results.map((r) => [r.exitCode, r.stdout, r.stderr])).toEqual(
      [0, 1, 2, 3, 4].map((i) => [0, `out${i}\n`, `err${i}\n`]),
    );
    expect(runner.connectionCount).toBe(1);
    expect(runner.target).toBe(`ssh://root@127.0.0.1:${TEST_SSH.port}`);
    expect(runner.hostFingerprint).toBe(hostFingerprint);
  });

  it.each([
    ['ssh', () => runner],
    ['local', () => new LocalCommandRunner()],
  ] as [string, () => CommandRunner][])(
    'passes hostile arguments byte for byte as argv and runs none of them (%s runner)',
    async (_kind, make) => {
      const marker = join(dir, `ran-${_kind}`);
      const args = hostileArguments(marker);
      const result = await make().run({ argv: ['printf', '%s\\0', ...args], cwd: dir });
      expect(nulSeparated(result.stdout)).toEqual(args);
      // Every argument once more as the program's name, env value and working directory.
      await make()
        .run({ argv: [`$(touch ${marker})`] })
        .catch(() => undefined);
      const env = await make().run({
        argv: ['sh', '-c', 'printf "%s" "$HOSTILE"'],
        env: { HOSTILE: `'$(touch ${marker})'` },
      });
      expect(env.stdout).toBe(`'$(touch ${marker})'`);
      const odd = join(dir, `a dir with 'quotes' and $(touch ${marker.replaceAll('/', '_')})`);
      await mkdir(odd, { recursive: true });
      expect((await make().run({ argv: ['pwd'], cwd: odd })).stdout).toBe(`${odd}\n`);
      await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(marker)).toBe(false);
    },
  );

  it('fails a non-zero exit with COMMAND_FAILED carrying stderr and status, or returns it when allowed', async () => {
    const error = await rejection(runner.run({ argv: ['sh', '-c', 'echo "disk on fire" >&2; exit 3'] }));
    expect(error.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(error.message).toContain('disk on fire');
    expect(error.details).toMatchObject({ exitCode: 3, stderr: 'disk on fire\n', target: runner.target });
    const result = await runner.run({ argv: ['sh', '-c', 'exit 7'], allowNonZeroExit: true });
    expect(result.exitCode).toBe(7);
    const missing = await rejection(runner.run({ argv: ['quantix-no-such-program'] }));
    expect(missing.details.exitCode).toBe(127);
  });

  it('writes stdin and closes it; gives no input (EOF) when stdin is not set', async () => {
    const bytes = new Uint8Array(256 * 1024).map((_, i) => i % 251);
    const echoed = await runner.run({ argv: ['sha256sum'], stdin: bytes });
    const local = await new LocalCommandRunner().run({ argv: ['sha256sum'], stdin: bytes });
    expect(echoed.stdout).toBe(local.stdout);
    expect((await runner.run({ argv: ['cat'], timeoutMs: 5_000 })).stdout).toBe('');
  });

  it('kills a command at its timeout with COMMAND_TIMEOUT, including what it started', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const started = Date.now();
    const error = await rejection(
      runner.run({ argv: ['sh', '-c', 'sleep 60 & echo $! > "$1"; wait', 'sh', pidFile], timeoutMs: 500 }),
    );
    expect(error.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    expect(Date.now() - started).toBeLessThan(3_000);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(0);
    expect(await waitFor(() => processGone(grandchild), 5_000)).toBe(true);
    // The connection survives a killed command.
    expect((await runner.run({ argv: ['echo', 'still here'] })).stdout).toBe('still here\n');
  });

  it('kills a command that writes more than the output limit, with COMMAND_FAILED', async () => {
    const error = await rejection(runner.run({ argv: ['yes'], maxOutputBytes: 64 * 1024, timeoutMs: 10_000 }));
    expect(error.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(error.details).toMatchObject({ reason: 'output-limit', stream: 'stdout' });
  });

  it('stops a command when its AbortSignal fires', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user cancelled')), 200);
    const error = await rejection(runner.run({ argv: ['sleep', '30'], signal: controller.signal }));
    expect(error.details.reason).toBe('aborted');
    expect((error.cause as Error).message).toBe('user cancelled');
  });

  it('runs at most 8 channels at once on its connection and queues the rest', async () => {
    const slots = join(dir, 'slots');
    await mkdir(slots);
    // Each command marks itself present, counts who else is, and leaves.
    const script = 'touch "$1/$$"; sleep 0.4; ls "$1" | wc -l; rm "$1/$$"';
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => runner.run({ argv: ['sh', '-c', script, 'sh', slots], timeoutMs: 30_000 })),
    );
    const seen = results.map((r) => Number(r.stdout.trim()));
    expect(Math.max(...seen)).toBeLessThanOrEqual(8);
    expect(Math.max(...seen)).toBeGreaterThanOrEqual(2);
    // 20 commands in batches of at most 8 take at least three rounds of 0.4 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_100);
    expect(runner.connectionCount).toBe(1);
  });

  it('kills running commands on close and refuses commands after it', async () => {
    const closing = new SshCommandRunner(testSshRunnerOptions());
    const running = rejection(closing.run({ argv: ['sleep', '30'] }));
    await new Promise((r) => setTimeout(r, 300));
    await closing.close();
    expect((await running).details.reason).toBe('aborted');
    await expect(closing.run({ argv: ['true'] })).rejects.toMatchObject({ code: ErrorCode.INSTANCE_CLOSED });
  });

  /** Runs `sh -c 'sleep 60 & echo $! > file; wait'` and returns the remote grandchild's pid once it is known. */
  const startSleeper = async (on: SshCommandRunner, name: string, timeoutMs = 60_000) => {
    const pidFile = join(dir, `${name}.pid`);
    const running = rejection(
      on.run({ argv: ['sh', '-c', 'sleep 60 & echo $! > "$1"; wait', 'sh', pidFile], timeoutMs }),
    );
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 10_000)).toBe(true);
    return { running, grandchild: Number(readFileSync(pidFile, 'utf8')) };
  };

  it('leaves no remote process behind when a command times out and the runner is closed at once', async () => {
    const closing = new SshCommandRunner(testSshRunnerOptions());
    const { running, grandchild } = await startSleeper(closing, 'timeout-close', 3_000);
    expect((await running).code).toBe(ErrorCode.COMMAND_TIMEOUT);
    await closing.close();
    expect(await waitFor(() => processGone(grandchild), 5_000)).toBe(true);
  });

  it('leaves no remote process behind when the runner is closed while a command runs', async () => {
    const closing = new SshCommandRunner(testSshRunnerOptions());
    const { running, grandchild } = await startSleeper(closing, 'close-running');
    await closing.close();
    expect((await running).details.reason).toBe('aborted');
    expect(await waitFor(() => processGone(grandchild), 5_000)).toBe(true);
  });

  it('passes exactly its input to a command and keeps exit codes and output as they were', async () => {
    const bytes = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
    const counted = await runner.run({ argv: ['wc', '-c'], stdin: bytes });
    expect(counted.stdout.trim()).toBe(String(bytes.length));
    const utf8 = await runner.run({ argv: ['cat'], stdin: 'héllo\n' });
    expect(utf8.stdout).toBe('héllo\n');
    const failed = await rejection(runner.run({ argv: ['sh', '-c', 'echo oops >&2; exit 7'] }));
    expect(failed.details).toMatchObject({ exitCode: 7, stderr: 'oops\n' });
  });

  describe('host keys', () => {
    it('refuses a host whose key does not match the pinned fingerprint, before any command runs', async () => {
      const marker = join(dir, 'mismatch-ran');
      const wrong = new SshCommandRunner(
        testSshRunnerOptions({ hostKey: { fingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } }),
      );
      const error = await rejection(wrong.run({ argv: ['touch', marker] }));
      await wrong.close();
      expect(error.code).toBe(NodeRuntimeErrorCode.SSH_HOST_KEY_MISMATCH);
      expect(error.details).toMatchObject({ offered: hostFingerprint });
      expect(existsSync(marker)).toBe(false);
    });

    it('refuses an unknown host unless trust on first use was asked for, naming the key offered', async () => {
      const marker = join(dir, 'unknown-ran');
      const strict = new SshCommandRunner(testSshRunnerOptions({ hostKey: {} }));
      const error = await rejection(strict.run({ argv: ['touch', marker] }));
      await strict.close();
      expect(error.code).toBe(NodeRuntimeErrorCode.SSH_HOST_KEY_UNKNOWN);
      expect(error.message).toContain(hostFingerprint);
      expect(existsSync(marker)).toBe(false);

      const pins: string[] = [];
      const trusting = new SshCommandRunner(
        testSshRunnerOptions({
          hostKey: { trustOnFirstUse: true, onPin: ({ fingerprint }) => void pins.push(fingerprint) },
        }),
      );
      expect((await trusting.run({ argv: ['echo', 'ok'] })).stdout).toBe('ok\n');
      await trusting.close();
      expect(pins).toEqual([hostFingerprint]);
      expect(trusting.hostFingerprint).toBe(hostFingerprint);
    });

    it('pins a key on first use and refuses the host once its key changes, even on reconnect', async () => {
      const sshd = await ThrowawaySshd.create();
      try {
        await sshd.start();
        const first = await sshd.fingerprint();
        const pins: string[] = [];
        const tofu = new SshCommandRunner(
          testSshRunnerOptions({
            port: sshd.port,
            connectAttempts: 1,
            hostKey: { trustOnFirstUse: true, onPin: ({ fingerprint }) => void pins.push(fingerprint) },
          }),
        );
        expect((await tofu.run({ argv: ['echo', 'first'] })).stdout).toBe('first\n');
        expect(pins).toEqual([first]);

        // The host is "reinstalled": same address, new key; the old connection is cut.
        await sshd.dropConnections();
        await sshd.stop();
        const second = await sshd.newHostKey();
        await sshd.start();
        const marker = join(dir, 'changed-ran');
        const error = await rejection(tofu.run({ argv: ['touch', marker] }));
        expect(error.code).toBe(NodeRuntimeErrorCode.SSH_HOST_KEY_MISMATCH);
        expect(error.details).toMatchObject({ offered: second, pinned: first });
        expect(existsSync(marker)).toBe(false);
        expect(pins).toEqual([first]);
        await tofu.close();
      } finally {
        await sshd.dispose();
      }
    });
  });

  it('keeps what a noisy login shell prints on stderr, and still kills on timeout', async () => {
    // bash runs $BASH_ENV before every `bash -c`: here it talks on stderr before the command does.
    const noisy = join(dir, 'noisy.sh');
    await writeFile(noisy, 'echo "profile says hi" >&2\n');
    const sshd = await ThrowawaySshd.create({ extraConfig: [`SetEnv SHLVL=1 BASH_ENV=${noisy}`] });
    try {
      await sshd.start();
      const chatty = new SshCommandRunner(
        testSshRunnerOptions({ port: sshd.port, hostKey: { fingerprint: await sshd.fingerprint() } }),
      );
      const result = await chatty.run({ argv: ['sh', '-c', 'echo out; echo err >&2'] });
      expect(result).toMatchObject({ stdout: 'out\n', stderr: 'profile says hi\nerr\n' });
      const pidFile = join(dir, 'noisy-grandchild.pid');
      const error = await rejection(
        chatty.run({ argv: ['sh', '-c', 'sleep 60 & echo $! > "$1"; wait', 'sh', pidFile], timeoutMs: 500 }),
      );
      expect(error.code).toBe(ErrorCode.COMMAND_TIMEOUT);
      const grandchild = Number(readFileSync(pidFile, 'utf8'));
      expect(await waitFor(() => processGone(grandchild), 5_000)).toBe(true);
      await chatty.close();
    } finally {
      await sshd.dispose();
    }
  });

  it('runs remote commands in the C locale when the login gives them a German one', async () => {
    requireLocale(GERMAN);
    // sshd's SetEnv stands for a host whose login environment is German (/etc/default/locale).
    const sshd = await ThrowawaySshd.create({ extraConfig: [`SetEnv SHLVL=1 LANG=${GERMAN} LC_ALL=${GERMAN}`] });
    try {
      await sshd.start();
      // What any other client of that host sees: OpenSSH's own ssh, no quantix in between.
      const plain = await exec('ssh', [
        ...['-p', String(sshd.port), '-i', TEST_SSH_KEY, '-o', 'BatchMode=yes'],
        ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
        `root@${TEST_SSH.host}`,
        'date -u -d @0 "+%A %B"',
      ]);
      expect(plain.stdout).toBe('Donnerstag Januar\n');
      const german = new SshCommandRunner(
        testSshRunnerOptions({ port: sshd.port, hostKey: { fingerprint: await sshd.fingerprint() } }),
      );
      try {
        expect((await german.run({ argv: ['date', '-u', '-d', '@0', '+%A %B'] })).stdout).toBe('Thursday January\n');
        const df = await german.run({ argv: ['df', '/no/such/dir'], allowNonZeroExit: true });
        expect(df.stderr).toBe('df: /no/such/dir: No such file or directory\n');
        // A caller that asks for a locale gets it.
        expect((await german.run({ argv: ['date', '-u', '-d', '@0', '+%A'], env: { LC_ALL: GERMAN } })).stdout).toBe(
          'Donnerstag\n',
        );
      } finally {
        await german.close();
      }
    } finally {
      await sshd.dispose();
    }
  });

  describe('connection loss', () => {
    it('reconnects on the next command after the connection is cut', async () => {
      const sshd = await ThrowawaySshd.create();
      try {
        await sshd.start();
        const reconnecting = new SshCommandRunner(
          testSshRunnerOptions({ port: sshd.port, hostKey: { fingerprint: await sshd.fingerprint() } }),
        );
        expect((await reconnecting.run({ argv: ['echo', 'before'] })).stdout).toBe('before\n');
        const inFlight = rejection(reconnecting.run({ argv: ['sleep', '30'] }));
        await new Promise((r) => setTimeout(r, 300));
        expect(await sshd.dropConnections()).toBeGreaterThan(0);
        const cut = await inFlight;
        expect(cut.code).toBe(ErrorCode.COMMAND_FAILED);
        expect(cut.details.reason).toBe('connection-lost');
        expect((await reconnecting.run({ argv: ['echo', 'after'] })).stdout).toBe('after\n');
        expect(reconnecting.connectionCount).toBe(2);
        await reconnecting.close();
      } finally {
        await sshd.dispose();
      }
    });

    it('kills a command and what it started when its connection is lost', async () => {
      const sshd = await ThrowawaySshd.create();
      try {
        await sshd.start();
        const cut = new SshCommandRunner(
          testSshRunnerOptions({ port: sshd.port, hostKey: { fingerprint: await sshd.fingerprint() } }),
        );
        const pidFile = join(dir, 'lost.pid');
        const running = rejection(
          cut.run({ argv: ['sh', '-c', 'sleep 60 & echo $! > "$1"; wait', 'sh', pidFile], timeoutMs: 60_000 }),
        );
        expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 10_000)).toBe(
          true,
        );
        const grandchild = Number(readFileSync(pidFile, 'utf8'));
        expect(await sshd.dropConnections()).toBeGreaterThan(0);
        expect((await running).details.reason).toBe('connection-lost');
        expect(await waitFor(() => processGone(grandchild), 5_000)).toBe(true);
        await cut.close();
      } finally {
        await sshd.dispose();
      }
    });

    it('retries a refused connection with backoff, then fails with SSH_CONNECT_FAILED', async () => {
      const port = await freePort();
      const nobody = new SshCommandRunner(
        testSshRunnerOptions({ port, connectAttempts: 3, initialBackoffMs: 200, hostKey: { trustOnFirstUse: true } }),
      );
      const started = Date.now();
      const error = await rejection(nobody.run({ argv: ['true'] }));
      await nobody.close();
      expect(error.code).toBe(NodeRuntimeErrorCode.SSH_CONNECT_FAILED);
      expect(error.details.attempts).toBe(3);
      // Two waits between three attempts: 200 ms, then 400 ms.
      expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    });

    it('connects once the server comes up during the backoff', async () => {
      const sshd = await ThrowawaySshd.create();
      try {
        const late = new SshCommandRunner(
          testSshRunnerOptions({
            port: sshd.port,
            connectAttempts: 8,
            initialBackoffMs: 100,
            hostKey: { fingerprint: await sshd.fingerprint() },
          }),
        );
        const running = late.run({ argv: ['echo', 'late'], timeoutMs: 30_000 });
        await new Promise((r) => setTimeout(r, 300));
        await sshd.start();
        expect((await running).stdout).toBe('late\n');
        await late.close();
      } finally {
        await sshd.dispose();
      }
    });
  });
});
