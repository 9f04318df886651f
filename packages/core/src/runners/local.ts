import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { CommandResult, CommandRunner, RunCommandOptions } from '../contracts/command-runner.js';
import { ErrorCode, QuantixError } from '../errors.js';

export interface LocalCommandRunnerOptions {
  /** Timeout for calls that give none. Default 30 s. */
  defaultTimeoutMs?: number;
  /** Output limit for calls that give none, per stream. Default 16 MiB. */
  defaultMaxOutputBytes?: number;
  /** Variables added to every command's environment (over this process's own and COMMAND_LOCALE_ENV). */
  env?: Record<string, string>;
}

/**
 * The locale every command runs in, whatever this process's own LANG/LC_* say: the output of
 * virsh, qemu-img, df, showmount… is parsed and their messages matched, and a translated message
 * or a localised date or number would read as something else. `C` exists on every host. Runners
 * (local and SSH) apply it under the caller's `env`, so only an explicit LC_ALL/LANG changes it.
 */
export const COMMAND_LOCALE_ENV: Readonly<Record<'LC_ALL' | 'LANG', string>> = Object.freeze({
  LC_ALL: 'C',
  LANG: 'C',
});

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/** How much of stderr an error message quotes; the whole of it stays in `details.stderr`. */
const MESSAGE_STDERR_CHARS = 2_000;
/** How long after its exit a command's output streams may stay open. */
const EXIT_GRACE_MS = 1_000;

/** How a command ended when it did not end by itself. */
export type CommandInterruption =
  | { kind: 'timeout' }
  | { kind: 'output-limit'; stream: 'stdout' | 'stderr' }
  | { kind: 'aborted'; reason: unknown };

/**
 * Runs commands on this machine. The argv goes to spawn() as it is, never through a shell, so
 * no argument can be read as shell syntax. Commands run in the C locale (COMMAND_LOCALE_ENV). Every call is bounded: on timeout, on too much
 * output, on abort or on close() the whole process group is killed with SIGKILL and the call
 * rejects at once — without waiting for the process to exit, because a process stuck in the
 * kernel (a hung NFS mount) cannot be made to.
 */
export class LocalCommandRunner implements CommandRunner {
  readonly target = 'local';
  private readonly defaultTimeoutMs: number;
  private readonly defaultMaxOutputBytes: number;
  private readonly baseEnv: Record<string, string>;
  private readonly inFlight = new Set<(reason: unknown) => void>();
  private closed = false;

  constructor(options: LocalCommandRunnerOptions = {}) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.defaultMaxOutputBytes = options.defaultMaxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.baseEnv = options.env ?? {};
  }

  async run(options: RunCommandOptions): Promise<CommandResult> {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, 'The local command runner is closed');
    const argv = checkArgv(options.argv);
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const maxOutputBytes = options.maxOutputBytes ?? this.defaultMaxOutputBytes;
    const program = argv[0] as string;
    if (options.signal?.aborted) {
      throw commandInterruptedError({
        argv,
        target: 'local',
        why: { kind: 'aborted', reason: options.signal.reason },
        timeoutMs,
        stdout: '',
        stderr: '',
      });
    }

    return new Promise<CommandResult>((resolve, reject) => {
      const started = performance.now();
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      const sizes = { stdout: 0, stderr: 0 };
      let settled = false;

      const child = spawn(program, argv.slice(1), {
        shell: false,
        // Own process group, so a timeout also kills what the command started (mount → mount.nfs).
        detached: true,
        cwd: options.cwd,
        env: { ...process.env, ...COMMAND_LOCALE_ENV, ...this.baseEnv, ...options.env },
        stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });

      const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');
      const finish = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.inFlight.delete(onClose);
        outcome();
      };
      const interrupt = (why: CommandInterruption) => {
        killGroup(child.pid);
        const error = commandInterruptedError({
          argv,
          target: 'local',
          why,
          timeoutMs,
          stdout: text(stdout),
          stderr: text(stderr),
        });
        finish(() => reject(error));
      };
      const onAbort = () => interrupt({ kind: 'aborted', reason: options.signal?.reason });
      const onClose = (reason: unknown) => interrupt({ kind: 'aborted', reason });

      const timer = setTimeout(() => interrupt({ kind: 'timeout' }), timeoutMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.inFlight.add(onClose);

      const collect = (stream: 'stdout' | 'stderr', chunks: Buffer[]) => (chunk: Buffer) => {
        if (settled) return;
        sizes[stream] += chunk.length;
        if (sizes[stream] > maxOutputBytes) return interrupt({ kind: 'output-limit', stream });
        chunks.push(chunk);
        options.onOutput?.(stream, chunk);
      };
      child.stdout?.on('data', collect('stdout', stdout));
      child.stderr?.on('data', collect('stderr', stderr));

      child.on('error', (error: NodeJS.ErrnoException) => {
        finish(() =>
          reject(
            new QuantixError(
              ErrorCode.COMMAND_FAILED,
              error.code === 'ENOENT'
                ? `Command '${program}' was not found (is it installed and on PATH?)`
                : `Command '${program}' could not be started: ${error.message}`,
              { details: { argv, target: 'local', errno: error.code ?? null }, cause: error },
            ),
          ),
        );
      });

      let exitGrace: NodeJS.Timeout | undefined;
      const complete = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(exitGrace);
        finish(() => {
          try {
            resolve(
              commandOutcome({
                argv,
                target: 'local',
                exitCode: code,
                signal,
                stdout: text(stdout),
                stderr: text(stderr),
                durationMs: Math.round(performance.now() - started),
                allowNonZeroExit: options.allowNonZeroExit,
              }),
            );
          } catch (error) {
            reject(error);
          }
        });
      };

      // The result waits for 'close' so that all output has been read. A process that leaves a
      // daemon behind holding its stdout would delay 'close' forever, so 'exit' gives it a moment.
      child.on('exit', (code, signal) => {
        exitGrace = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          complete(code, signal);
        }, EXIT_GRACE_MS);
      });
      child.on('close', (code, signal) => complete(code, signal));

      if (options.stdin !== undefined && child.stdin) {
        // A command may exit without reading its input; EPIPE then is not our failure.
        child.stdin.on('error', () => undefined);
        child.stdin.end(options.stdin);
      }
    });
  }

  /** Kills the commands still running (their calls reject) and refuses further calls. */
  async close(): Promise<void> {
    this.closed = true;
    const reason = new QuantixError(ErrorCode.INSTANCE_CLOSED, 'The local command runner was closed');
    for (const cancel of [...this.inFlight]) cancel(reason);
  }
}

/** How a command ended, as any runner (local, SSH) observes it. */
export interface CommandExit {
  argv: readonly string[];
  target: string;
  /** null when the command was ended by a signal. */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  allowNonZeroExit?: boolean;
}

/**
 * The result of a finished command, or the COMMAND_FAILED error it amounts to: a non-zero exit
 * (unless allowed) or death by a signal, with stderr quoted in the message and kept whole in
 * `details`. Shared by runners so that every one reports failures the same way.
 */
export function commandOutcome(exit: CommandExit): CommandResult {
  const { argv, exitCode, signal, stdout, stderr, durationMs } = exit;
  if (exitCode === 0 || (exitCode !== null && exit.allowNonZeroExit)) {
    return { exitCode, stdout, stderr, durationMs };
  }
  const how = exitCode === null ? `was killed by ${signal}` : `exited with status ${exitCode}`;
  const said = stderr.trim().slice(0, MESSAGE_STDERR_CHARS);
  throw new QuantixError(ErrorCode.COMMAND_FAILED, `Command '${argv[0]}' ${how}${said ? `: ${said}` : ''}`, {
    details: { argv, target: exit.target, exitCode, signal, stderr, stdout, durationMs },
  });
}

function checkArgv(argv: readonly string[]): string[] {
  if (!Array.isArray(argv) || argv.length === 0 || typeof argv[0] !== 'string' || argv[0] === '') {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'A command needs an argv with the program first', {
      details: { argv },
    });
  }
  for (const arg of argv) {
    if (typeof arg !== 'string' || arg.includes('\0')) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'Every argument of a command must be a string without NUL', {
        details: { argv },
      });
    }
  }
  return [...argv];
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is already gone, or the leader never started.
  }
}

/**
 * The error for a command that was stopped: COMMAND_TIMEOUT at its timeout, COMMAND_FAILED for
 * too much output or an abort, with the output so far in `details`. Shared by runners.
 */
export function commandInterruptedError(options: {
  argv: readonly string[];
  target: string;
  why: CommandInterruption;
  timeoutMs: number;
  stdout: string;
  stderr: string;
}): QuantixError {
  const { argv, target, why, timeoutMs, stdout, stderr } = options;
  const program = argv[0];
  const details = { argv, target, stdout, stderr };
  switch (why.kind) {
    case 'timeout':
      return new QuantixError(ErrorCode.COMMAND_TIMEOUT, `Command '${program}' did not finish within ${timeoutMs} ms`, {
        details: { ...details, timeoutMs },
      });
    case 'output-limit':
      return new QuantixError(
        ErrorCode.COMMAND_FAILED,
        `Command '${program}' wrote more ${why.stream} than the output limit allows; it was killed`,
        { details: { ...details, reason: 'output-limit', stream: why.stream } },
      );
    case 'aborted':
      return new QuantixError(ErrorCode.COMMAND_FAILED, `Command '${program}' was aborted`, {
        details: { ...details, reason: 'aborted' },
        cause: why.reason,
      });
  }
}
