/**
 * Test support (not exported from the package): the real services the integration tests and
 * benches use, and where to find them. It only checks that they are up — starting them is
 * scripts/services.sh's job, run before the tests (scripts/test-all.sh does) — and a service
 * that is not there fails the test with what to run; it never skips.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import { isQuantixError, LocalCommandRunner, type QuantixError } from '@quantix/core';
import { waitFor as waitUntil } from '@quantix/core/testing';
import { LibvirtHypervisor } from '../libvirt/hypervisor.js';
import { publicKeyFingerprint } from '../ssh/fingerprint.js';
import type { SshCommandRunnerOptions } from '../ssh/runner.js';

const run = promisify(execFile);

/** The test sshd that `scripts/services.sh sshd` starts; the env names and defaults are documented there. */
export const TEST_SSH = {
  host: '127.0.0.1',
  port: Number(process.env.QUANTIX_TEST_SSH_PORT ?? 2222),
  username: 'root',
  dir: process.env.QUANTIX_TEST_SSH_DIR ?? '/var/lib/quantix-test/ssh',
};

export const TEST_SSH_KEY = `${TEST_SSH.dir}/id_ed25519`;
export const TEST_SSH_HOST_PUBLIC_KEY = `${TEST_SSH.dir}/ssh_host_ed25519_key.pub`;

export const LIBVIRT_URI = 'qemu:///system';

type TestService = 'libvirt' | 'sshd';

/**
 * Fails unless the named services are up: libvirtd answers `virsh version` on qemu:///system;
 * the test sshd listens and its key pair is there. The error says how to start what is missing.
 */
export async function requireServices(...names: TestService[]): Promise<void> {
  const problems: string[] = [];
  for (const name of new Set(names)) {
    const problem = name === 'libvirt' ? await libvirtProblem() : await sshdProblem();
    if (problem) problems.push(`${name}: ${problem}`);
  }
  if (problems.length > 0) {
    throw new Error(
      `This test needs services that are not running (${problems.join('; ')}). ` +
        `Start them as root with: bash scripts/services.sh ${names.join(' ')}`,
    );
  }
}

async function libvirtProblem(): Promise<string | null> {
  try {
    await run('virsh', ['-c', LIBVIRT_URI, 'version'], { timeout: 15_000, env: { ...process.env, LC_ALL: 'C' } });
    return null;
  } catch (error) {
    const { stderr, code } = error as { stderr?: string; code?: string };
    if (code === 'ENOENT') return 'virsh is not installed (Debian package libvirt-clients)';
    return `libvirtd does not answer on ${LIBVIRT_URI}: ${stderr?.trim() || String(error)}`;
  }
}

async function sshdProblem(): Promise<string | null> {
  for (const file of [TEST_SSH_KEY, TEST_SSH_HOST_PUBLIC_KEY]) {
    if (!existsSync(file)) return `${file} does not exist`;
  }
  return (await accepts(TEST_SSH.host, TEST_SSH.port)) ? null : `nothing listens on ${TEST_SSH.host}:${TEST_SSH.port}`;
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(5_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, host);
  });
}

/** SSH runner options for the test sshd, with its host key pinned as `ssh-keygen -lf` prints it. */
export function testSshRunnerOptions(overrides: Partial<SshCommandRunnerOptions> = {}): SshCommandRunnerOptions {
  return {
    host: TEST_SSH.host,
    port: TEST_SSH.port,
    username: TEST_SSH.username,
    privateKey: readFileSync(TEST_SSH_KEY),
    hostKey: { fingerprint: publicKeyFingerprint(readFileSync(TEST_SSH_HOST_PUBLIC_KEY, 'utf8')) },
    ...overrides,
  };
}

/** KVM when /dev/kvm can be opened, else QEMU's TCG emulation (slower, but domains still run). */
export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** A name prefix unique to this test run, so parallel runs and leftovers never collide. */
export function runPrefix(what: string): string {
  return `qxt-${what}-${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
}

/** True once the process is gone, or only a zombie waiting for a reaper is left. */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Whether `check` came true within `withinMs` (core/testing's waitFor, answering instead of throwing). */
export async function waitFor(check: () => boolean | Promise<boolean>, withinMs: number): Promise<boolean> {
  return waitUntil('a check', check, withinMs).then(
    () => true,
    () => false,
  );
}

/** The QuantixError a promise rejects with; anything else (or no rejection) fails the test. */
export async function rejection(promise: Promise<unknown>): Promise<QuantixError> {
  try {
    await promise;
  } catch (error) {
    if (isQuantixError(error)) return error;
    throw error;
  }
  throw new Error('expected a QuantixError');
}

/** Stops and undefines every domain whose name starts with `prefix`: what a failed test left behind. */
export async function removeDomains(prefix: string): Promise<void> {
  const local = new LibvirtHypervisor({ runner: new LocalCommandRunner() });
  for (const domain of await local.list().catch(() => [])) {
    if (!domain.name.startsWith(prefix)) continue;
    await local.destroy({ name: domain.name }).catch(() => undefined);
    await local.undefine({ name: domain.name, removeStorage: true }).catch(() => undefined);
  }
}
