import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import {
  COMMAND_LOCALE_ENV,
  type CommandRunner,
  DEFAULT_MAX_OUTPUT_BYTES,
  ErrorCode,
  LocalCommandRunner,
  type PluginContext,
  QuantixError,
} from '@quantix/core';
import type { InteractiveProcess } from '../ssh/runner.js';

type Logger = PluginContext['logger'];

/**
 * virsh reads its input with readline, which echoes each line to stdout: on a dumb terminal (no
 * control sequences) that is wide enough, it echoes the line as it is; on a narrower one it
 * scrolls long lines sideways ('\r<…'). So the width is set far beyond the longest line sent.
 */
const PLAIN_TERMINAL = { TERM: 'dumb', COLUMNS: '1000000' };
/** The longest command line sent, well inside PLAIN_TERMINAL's width. */
const MAX_LINE_CHARS = 500_000;

/** A runner that can start a long-lived command with streams (SshCommandRunner does). */
export interface InteractiveCommandRunner extends CommandRunner {
  spawn(options: {
    argv: readonly string[];
    env?: Record<string, string>;
    timeoutMs?: number;
  }): Promise<InteractiveProcess>;
}

/**
 * How to start a long-lived command through `runner`: over its SSH channel when it can spawn,
 * as a child process when it is core's LocalCommandRunner, else null (the runner only runs
 * commands to completion, so callers keep a process per call).
 */
export function interactiveSpawner(
  runner: CommandRunner,
): ((argv: readonly string[], timeoutMs: number) => Promise<InteractiveProcess>) | null {
  const candidate = runner as Partial<InteractiveCommandRunner>;
  if (typeof candidate.spawn === 'function') {
    return (argv, timeoutMs) => (runner as InteractiveCommandRunner).spawn({ argv, timeoutMs, env: PLAIN_TERMINAL });
  }
  if (runner instanceof LocalCommandRunner) return async (argv) => spawnLocal(argv);
  return null;
}

/** A child process in a process group of its own (so kill() reaches what it started), in the C locale. */
function spawnLocal(argv: readonly string[]): InteractiveProcess {
  const [program, ...args] = argv as [string, ...string[]];
  const child = spawn(program, args, {
    env: { ...process.env, ...COMMAND_LOCALE_ENV, ...PLAIN_TERMINAL },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const stderr = new PassThrough();
  child.stderr.pipe(stderr);
  child.stdin.on('error', () => undefined);
  // An idle session must not keep this process alive: it ends when its input closes with us.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void }).unref?.();
  const ended = new Promise<{ exitCode: number | null }>((resolve) => {
    child.once('close', (code) => resolve({ exitCode: code }));
    // A program that cannot be started is answered as a shell would (127: not found).
    child.once('error', () => resolve({ exitCode: 127 }));
  });
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stderr,
    pid: child.pid ?? -1,
    ended,
    kill: () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    },
  };
}

/** Characters virsh's command-line parser reads literally outside quotes (no space, quote, `\`, `;` or `#`). */
const BARE_VIRSH_ARG = /^[A-Za-z0-9_.,:/=+@%-]+$/;

/**
 * Quotes one argument for virsh's own command-line parser (its interactive shell). An argument
 * of BARE_VIRSH_ARG's characters alone is sent as it is: virsh's line editor reads its input one
 * byte at a time, so every byte spared is a few system calls less per command. Any other goes
 * whole in single quotes, in which virsh reads every byte literally (backslashes, `"`, `;`, `#`,
 * `$`), with each single quote as '\'' (close, escaped quote, reopen). Quoting or not, a word
 * beginning `--` is an option to virsh, so callers put `--` before data that may. Control
 * characters — a newline ends the command, a tab or escape is a key binding of the line editor
 * — cannot be sent at all, so they are refused with INVALID_INPUT.
 */
export function quoteVirshArg(arg: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
  if (typeof arg !== 'string' || /[\u0000-\u001f\u007f]/.test(arg)) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      'A virsh argument must be a string without control characters (line breaks, tabs, escapes)',
      { details: { arg: String(arg) } },
    );
  }
  if (BARE_VIRSH_ARG.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export interface VirshSessionOptions {
  /** Where virsh runs. Must be able to start a long-lived command (see interactiveSpawner). */
  runner: CommandRunner;
  uri: string;
  /** Bound on starting the session (connecting included). Default 30 s. */
  startTimeoutMs?: number;
  /** Largest output of one command, per stream; more kills the session. Default 16 MiB. */
  maxOutputBytes?: number;
  logger?: Logger;
}

interface Live {
  process: InteractiveProcess;
  /** Random per session: no command's output can hold the end markers of the next one. */
  token: string;
  stdout: string;
  stderr: string;
  /** Called on every chunk and when the process ends; set while a command runs. */
  wake: (() => void) | null;
  dead: boolean;
  /** virsh's exit status once it has ended by itself. */
  exitCode: number | null;
}

/**
 * One kept-open `virsh --quiet --connect URI` reading commands on its input, so a libvirt call
 * costs one round trip on an open connection instead of a process (and, remotely, an SSH
 * channel and a libvirt connection) per call. Commands run one at a time, in call order.
 *
 * Each command is written as one line of arguments quoted by quoteVirshArg, followed by one line
 * `echo --err M ; echo M` of an end marker M unique to the session and command (a line of its
 * own, so a command virsh cannot parse does not take the markers down with it); its output and
 * errors are what came before the markers. virsh reports every failed command on stderr as
 * `error: …`, and that is how failure is told: the call then rejects with COMMAND_FAILED
 * carrying `exitCode: 1` and the stderr, as a per-process run would, so error mapping is shared.
 *
 * A command that does not answer within its timeout kills the session (its whole process group,
 * remotely from another channel) and rejects with COMMAND_TIMEOUT; a session that ended (crashed,
 * killed, connection lost) is replaced by the next command.
 */
export class VirshSession {
  private readonly spawner: NonNullable<ReturnType<typeof interactiveSpawner>>;
  private readonly options: VirshSessionOptions;
  private live: Live | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private sequence = 0;
  private started = 0;
  private closed = false;

  constructor(options: VirshSessionOptions) {
    const spawner = interactiveSpawner(options.runner);
    if (!spawner) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `A virsh session needs a runner that can start a long-lived command; ${options.runner.target} cannot`,
      );
    }
    this.spawner = spawner;
    this.options = options;
  }

  /** Sessions started so far (1 while the first lasts); for tests and diagnostics. */
  get sessionCount(): number {
    return this.started;
  }

  /** The running virsh (its PID where it runs), if a session is open; for tests and diagnostics. */
  get process(): InteractiveProcess | null {
    return this.live && !this.live.dead ? this.live.process : null;
  }

  /** Runs `virsh ARGS` in the session; resolves with its stdout, rejects as a failed virsh call would. */
  run(args: readonly string[], options: { timeoutMs: number }): Promise<string> {
    let line: string;
    try {
      // Quoted now, so bad input is refused before it waits in the queue.
      line = args.map(quoteVirshArg).join(' ');
      if (line.length > MAX_LINE_CHARS) {
        throw new QuantixError(ErrorCode.INVALID_INPUT, `A virsh command may be at most ${MAX_LINE_CHARS} characters`, {
          details: { length: line.length },
        });
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const argv = ['virsh', ...args];
    // The timeout counts from the call, as a runner's does: waiting behind a slow command counts.
    const deadline = Date.now() + options.timeoutMs;
    const turn = this.queue.then(() => this.execute(line, argv, options.timeoutMs, deadline));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Ends the session; further calls fail with INSTANCE_CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    const live = this.live;
    this.live = null;
    if (!live || live.dead) return;
    live.process.stdin.end();
    const exited = await Promise.race([
      live.process.ended.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 1_000).unref()),
    ]);
    if (!exited) live.process.kill();
  }

  private async execute(line: string, argv: string[], timeoutMs: number, deadline: number): Promise<string> {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, 'The virsh session is closed');
    const target = this.options.runner.target;
    const timedOut = (what: string) =>
      new QuantixError(
        ErrorCode.COMMAND_TIMEOUT,
        `virsh ${argv[1] ?? ''} on ${target} ${what} within ${timeoutMs} ms`,
        {
          details: { argv, target, timeoutMs, session: true },
        },
      );
    if (Date.now() >= deadline) throw timedOut('did not get its turn');
    const live = this.live && !this.live.dead ? this.live : await this.start(deadline - Date.now());
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) throw timedOut('did not get its turn');
    const marker = `${live.token}${++this.sequence}`;
    // Written with an escaped letter (Q\X → QX), so the echo of the input line never contains the marker.
    const markerArg = `${marker[0]}\\${marker.slice(1)}`;
    const stderrEnd = `error: ${marker}\n`;
    return new Promise<string>((resolve, reject) => {
      const limit = this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
      const details = () => ({ argv, target, stdout: live.stdout, stderr: live.stderr, session: true });
      const fail = (error: QuantixError) => {
        clearTimeout(timer);
        live.wake = null;
        this.kill(live);
        reject(error);
      };
      const timer = setTimeout(
        () =>
          fail(
            new QuantixError(
              ErrorCode.COMMAND_TIMEOUT,
              `virsh ${argv[1] ?? ''} on ${target} did not answer within ${timeoutMs} ms; its session was killed`,
              { details: { ...details(), timeoutMs } },
            ),
          ),
        remainingMs,
      );
      // Where the markers are looked for next: only text that came since, so a long output is
      // scanned once rather than again with every chunk.
      let outFrom = 0;
      let errFrom = 0;
      live.wake = () => {
        const outEnd = live.stdout.indexOf(marker, outFrom);
        const errEnd = live.stderr.indexOf(stderrEnd, errFrom);
        if (outEnd !== -1 && errEnd !== -1) {
          clearTimeout(timer);
          live.wake = null;
          const stdout = commandOutput(live.stdout.slice(0, outEnd), line, markerArg);
          if (stdout === null) {
            return fail(
              new QuantixError(ErrorCode.COMMAND_FAILED, `virsh on ${target} answered in a form not understood`, {
                details: { ...details(), reason: 'session-protocol' },
              }),
            );
          }
          const stderr = live.stderr.slice(0, errEnd);
          // What follows the markers (the prompt for the next line) belongs to the next command.
          live.stdout = live.stdout.slice(outEnd + marker.length);
          live.stderr = live.stderr.slice(errEnd + stderrEnd.length);
          if (/^error: /m.test(stderr)) {
            const said = stderr.trim().slice(0, 2_000);
            return reject(
              new QuantixError(ErrorCode.COMMAND_FAILED, `Command 'virsh' on ${target} failed: ${said}`, {
                details: { argv, target, exitCode: 1, signal: null, stdout, stderr, session: true },
              }),
            );
          }
          return resolve(stdout);
        }
        if (live.dead && live.exitCode !== null && live.exitCode !== 0) {
          // virsh gave up by itself (it exits when it cannot connect at start, 127 when it is not
          // installed): the same failure a virsh process per call would have reported.
          clearTimeout(timer);
          live.wake = null;
          const said = live.stderr.trim().slice(0, 2_000);
          return reject(
            new QuantixError(
              ErrorCode.COMMAND_FAILED,
              `Command 'virsh' on ${target} exited with status ${live.exitCode}: ${said}`,
              {
                details: { ...details(), exitCode: live.exitCode, signal: null },
              },
            ),
          );
        }
        if (live.dead) {
          return fail(
            new QuantixError(
              ErrorCode.COMMAND_FAILED,
              `virsh on ${target} ended during '${argv[1] ?? ''}' (it may or may not have taken effect)`,
              { details: { ...details(), reason: 'session-ended' } },
            ),
          );
        }
        if (outEnd === -1) outFrom = Math.max(0, live.stdout.length - marker.length);
        if (errEnd === -1) errFrom = Math.max(0, live.stderr.length - stderrEnd.length);
        if (live.stdout.length > limit || live.stderr.length > limit) {
          fail(
            new QuantixError(
              ErrorCode.COMMAND_FAILED,
              `virsh ${argv[1] ?? ''} on ${target} wrote more than the output limit allows; its session was killed`,
              { details: { ...details(), reason: 'output-limit' } },
            ),
          );
        }
      };
      live.process.stdin.write(`${line}\necho --err ${markerArg} ; echo ${markerArg}\n`);
      live.wake();
    });
  }

  private async start(timeoutMs: number): Promise<Live> {
    const process = await this.spawner(['virsh', '--quiet', '--connect', this.options.uri], timeoutMs);
    this.started++;
    const live: Live = {
      process,
      // Short, as every byte costs (see quoteVirshArg); 64 random bits no output can guess.
      token: `QX${randomBytes(8).toString('base64url')}N`,
      stdout: '',
      stderr: '',
      wake: null,
      dead: false,
      exitCode: null,
    };
    process.stdout.setEncoding('utf8');
    process.stderr.setEncoding('utf8');
    process.stdout.on('data', (chunk: string) => {
      live.stdout += chunk;
      live.wake?.();
    });
    process.stderr.on('data', (chunk: string) => {
      live.stderr += chunk;
      live.wake?.();
    });
    void process.ended.then(({ exitCode }) => {
      live.exitCode = exitCode;
      live.dead = true;
      if (this.live === live) this.live = null;
      live.wake?.();
    });
    if (this.closed) {
      this.kill(live);
      throw new QuantixError(ErrorCode.INSTANCE_CLOSED, 'The virsh session is closed');
    }
    this.live = live;
    this.options.logger?.debug({ target: this.options.runner.target, uri: this.options.uri }, 'virsh session started');
    return live;
  }

  private kill(live: Live): void {
    live.dead = true;
    if (this.live === live) this.live = null;
    live.process.kill();
  }
}

/**
 * A command's own output out of what virsh's line editor wrote around it: it echoes each input
 * line after its prompt, so the text reads `PROMPT line\n OUTPUT PROMPT echo --err M ; echo M\n`
 * (the marker itself follows). Null when it does not have that form.
 */
function commandOutput(text: string, line: string, markerArg: string): string | null {
  // The prompt ('virsh # ', or 'virsh > ' read-only) is what precedes the command's echo; the
  // marker line's prompt follows the output directly (an output need not end in a line break).
  const firstBreak = text.indexOf('\n');
  const firstLine = text.slice(0, firstBreak);
  if (firstBreak === -1 || !firstLine.endsWith(line)) return null;
  const prompt = firstLine.slice(0, firstLine.length - line.length);
  const trailer = `${prompt}echo --err ${markerArg} ; echo ${markerArg}\n`;
  if (prompt === '' || !text.endsWith(trailer) || text.length < firstBreak + 1 + trailer.length) return null;
  return text.slice(firstBreak + 1, text.length - trailer.length);
}
