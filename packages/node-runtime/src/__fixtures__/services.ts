/**
 * Test support (not exported from the package): the real services the integration tests and
 * benches use, started through the project's scripts/services.sh, and where to find them.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isQuantixError, LocalCommandRunner, type QuantixError } from '@quantix/core';
import { LibvirtHypervisor } from '../libvirt/hypervisor.js';
import { publicKeyFingerprint } from '../ssh/fingerprint.js';
import type { SshCommandRunnerOptions } from '../ssh/runner.js';

const run = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

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

/**
 * Installs (when missing) and starts the named services. A service that cannot be started fails
 * the caller: tests never skip for a missing service.
 */
export async function ensureServices(...names: ('libvirt' | 'sshd' | 'postgres')[]): Promise<void> {
  try {
    await run('bash', [`${REPO_ROOT}scripts/services.sh`, ...names], { timeout: 600_000, maxBuffer: 4 * 1024 * 1024 });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`scripts/services.sh ${names.join(' ')} failed: ${stderr ?? String(error)}`);
  }
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

export async function waitFor(check: () => boolean | Promise<boolean>, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
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
