import { readFileSync } from 'node:fs';
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, isQuantixError, type QuantixError } from '../errors.js';
import { LocalCommandRunner } from './local.js';

// Real processes throughout: sh, printf, cat, sleep, yes are on every machine this runs on.

async function rejection(promise: Promise<unknown>): Promise<QuantixError> {
  try {
    await promise;
  } catch (error) {
    if (isQuantixError(error)) return error;
    throw error;
  }
  throw new Error('expected the command to fail');
}

/** True once the process is gone (or only a zombie waiting for a reaper is left). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitUntilGone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (isGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return isGone(pid);
}

describe('LocalCommandRunner', () => {
  const runner = new LocalCommandRunner();
  let dir: string;

  beforeAll(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), 'quantix-runner-')));
  });
  afterAll(async () => {
    await runner.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('returns stdout, stderr, the exit status and the duration of a command', async () => {
    const result = await runner.run({ argv: ['sh', '-c', 'echo out; echo err >&2'] });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'out\n', stderr: 'err\n' });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(runner.target).toBe('local');
  });

  it('passes output to onOutput as it arrives, before the command ends', async () => {
    // The command waits for a file that only onOutput creates, once it has seen the first line:
    // output held back until the end would leave it waiting until its timeout.
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

  it('passes every argument literally, with no shell to interpret it', async () => {
    const hostile = ['$(id)', '`id`', 'a b', '; rm -rf /', '*', "'", '"', '\n', '$HOME', '|'];
    const result = await runner.run({ argv: ['printf', '[%s]', ...hostile] });
    expect(result.stdout).toBe(hostile.map((arg) => `[${arg}]`).join(''));
  });

  it('fails a non-zero exit with COMMAND_FAILED carrying stderr and the exit status', async () => {
    const error = await rejection(runner.run({ argv: ['sh', '-c', 'echo "disk on fire" >&2; exit 3'] }));
    expect(error.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(error.message).toContain('disk on fire');
    expect(error.details).toMatchObject({
      exitCode: 3,
      stderr: 'disk on fire\n',
      argv: ['sh', '-c', expect.any(String)],
    });
  });

  it('returns a non-zero exit as a result when allowNonZeroExit is set', async () => {
    const result = await runner.run({ argv: ['sh', '-c', 'echo nope >&2; exit 7'], allowNonZeroExit: true });
    expect(result).toMatchObject({ exitCode: 7, stderr: 'nope\n' });
  });

  it('reports a program that does not exist as COMMAND_FAILED, even with allowNonZeroExit', async () => {
    const error = await rejection(runner.run({ argv: ['quantix-no-such-program'], allowNonZeroExit: true }));
    expect(error.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(error.message).toContain('was not found');
    expect(error.details.errno).toBe('ENOENT');
  });

  it('kills a command at its timeout with COMMAND_TIMEOUT, including what it started', async () => {
    const started = Date.now();
    // The shell prints its background child's PID, then waits for it.
    const error = await rejection(runner.run({ argv: ['sh', '-c', 'sleep 30 & echo $!; wait'], timeoutMs: 300 }));
    expect(error.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(error.details.timeoutMs).toBe(300);
    const grandchild = Number.parseInt(String(error.details.stdout), 10);
    expect(grandchild).toBeGreaterThan(0);
    expect(await waitUntilGone(grandchild, 2_000)).toBe(true);
  });

  it('times out on time even when the command ignores SIGTERM', async () => {
    // showmount against a hung server behaves like this: it sits out SIGTERM.
    const started = Date.now();
    const error = await rejection(runner.run({ argv: ['sh', '-c', 'trap "" TERM; sleep 30'], timeoutMs: 200 }));
    expect(error.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('uses the default timeout given to the runner when a call gives none', async () => {
    const quick = new LocalCommandRunner({ defaultTimeoutMs: 200 });
    const error = await rejection(quick.run({ argv: ['sleep', '30'] }));
    expect(error.code).toBe(ErrorCode.COMMAND_TIMEOUT);
    await quick.close();
  });

  it('kills a command that writes more than the output limit, with COMMAND_FAILED', async () => {
    const started = Date.now();
    const error = await rejection(runner.run({ argv: ['yes'], maxOutputBytes: 64 * 1024 }));
    expect(error.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(error.details).toMatchObject({ reason: 'output-limit', stream: 'stdout' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('writes stdin to the command and closes it', async () => {
    expect((await runner.run({ argv: ['cat'], stdin: 'hello\n' })).stdout).toBe('hello\n');
    const bytes = new TextEncoder().encode('bytes too');
    expect((await runner.run({ argv: ['cat'], stdin: bytes })).stdout).toBe('bytes too');
  });

  it('gives a command no input when stdin is not set, so a reader does not wait forever', async () => {
    const result = await runner.run({ argv: ['cat'], timeoutMs: 5_000 });
    expect(result).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('does not fail when the command exits without reading its stdin', async () => {
    const result = await runner.run({ argv: ['true'], stdin: 'x'.repeat(1024 * 1024) });
    expect(result.exitCode).toBe(0);
  });

  it('stops a command when its AbortSignal fires', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user cancelled')), 100);
    const started = Date.now();
    const error = await rejection(runner.run({ argv: ['sleep', '30'], signal: controller.signal }));
    expect(error.code).toBe(ErrorCode.COMMAND_FAILED);
    expect(error.details.reason).toBe('aborted');
    expect((error.cause as Error).message).toBe('user cancelled');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('does not start a command whose signal is already aborted', async () => {
    const marker = join(dir, 'should-not-exist');
    const error = await rejection(runner.run({ argv: ['touch', marker], signal: AbortSignal.abort() }));
    expect(error.details.reason).toBe('aborted');
    await new Promise((r) => setTimeout(r, 100));
    expect(() => readFileSync(marker)).toThrow();
  });

  it('runs in the given directory with the given environment added', async () => {
    const result = await runner.run({
      argv: ['sh', '-c', 'pwd; echo "$QUANTIX_X"; test -n "$PATH"'],
      cwd: dir,
      env: { QUANTIX_X: 'y' },
    });
    expect(result.stdout).toBe(`${dir}\ny\n`);
  });

  it('returns once a command has exited even if something it left behind holds its output open', async () => {
    const started = Date.now();
    const result = await runner.run({ argv: ['sh', '-c', '(sleep 3 &); echo done'], timeoutMs: 10_000 });
    expect(result.stdout).toBe('done\n');
    expect(Date.now() - started).toBeLessThan(2_900);
  });

  it('refuses an empty argv or arguments with NUL bytes as INVALID_INPUT', async () => {
    await expect(runner.run({ argv: [] })).rejects.toMatchObject({ code: ErrorCode.INVALID_INPUT });
    await expect(runner.run({ argv: ['echo', 'a\0b'] })).rejects.toMatchObject({ code: ErrorCode.INVALID_INPUT });
  });

  it('kills running commands on close and refuses commands after it', async () => {
    const closing = new LocalCommandRunner();
    const running = closing.run({ argv: ['sleep', '30'] });
    await new Promise((r) => setTimeout(r, 50));
    await closing.close();
    const error = await rejection(running);
    expect(error.details.reason).toBe('aborted');
    await expect(closing.run({ argv: ['true'] })).rejects.toMatchObject({ code: ErrorCode.INSTANCE_CLOSED });
  });
});
