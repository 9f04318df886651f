/** Real processes for end-to-end tests: the `quantix` and `quantix-node` commands as users run them. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

const repoRoot = join(import.meta.dirname, '../../..');
export const QUANTIX = join(repoRoot, 'examples/control-plane/bin/quantix.js');
export const QUANTIX_NODE = join(repoRoot, 'examples/node-daemon/bin/quantix-node.js');

export interface Proc {
  child: ChildProcess;
  /** stdout and stderr as they arrived. */
  output: string[];
}

export function startProcess(args: string[], env: Record<string, string>, cwd?: string): Proc {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, QUANTIX_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd ? { cwd } : {}),
  });
  const output: string[] = [];
  child.stdout?.on('data', (d) => output.push(String(d)));
  child.stderr?.on('data', (d) => output.push(String(d)));
  return { child, output };
}

/** Waits until the process printed something matching `pattern` (or exited, or the time ran out). */
export async function waitForOutput(proc: Proc, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(proc.output.join(''));
    if (match) return match;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(
        `the process exited (${proc.child.exitCode ?? proc.child.signalCode}) before printing ${pattern}:\n${proc.output.join('')}`,
      );
    }
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${proc.output.join('')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves with the exit code once the process exits; rejects when it is still running after `timeoutMs`. */
export async function exitOf(proc: Proc, timeoutMs: number): Promise<number | null> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.child.exitCode;
  const timer = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new Error(`still running after ${timeoutMs} ms:\n${proc.output.join('')}`)),
      timeoutMs,
    ).unref(),
  );
  const [code] = (await Promise.race([once(proc.child, 'exit'), timer])) as [number | null];
  return code;
}

export async function stopProcess(proc: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = once(proc.child, 'exit');
  proc.child.kill(signal);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
}

export { freePort } from '@quantix/core/testing';
