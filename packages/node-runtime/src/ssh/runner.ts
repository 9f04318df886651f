import { performance } from 'node:perf_hooks';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import {
  COMMAND_LOCALE_ENV,
  type CommandResult,
  type CommandRunner,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_MAX_OUTPUT_BYTES,
  ErrorCode,
  isQuantixError,
  type PluginContext,
  QuantixError,
  type RunCommandOptions,
} from '@quantix/core';
import type { ClientChannel, Client as SshClient } from 'ssh2';
import ssh2 from 'ssh2';
import { NodeRuntimeErrorCode } from '../errors.js';
import { normalizeFingerprint, sshKeyFingerprint } from './fingerprint.js';
import { quoteArgv, quoteShellArg } from './quote.js';

const { Client } = ssh2;

type Logger = PluginContext['logger'];

/** How the host's key is checked. There is no unchecked mode. */
export interface HostKeyPolicy {
  /** The pinned SHA-256 fingerprint, as `ssh-keygen -lf` prints it (`SHA256:…`). */
  fingerprint?: string | null;
  /**
   * With no fingerprint pinned, accept the key offered on the first connection and pin it (for
   * this runner's life, and through `onPin` for the caller to store). Without it an unknown host
   * is refused with SSH_HOST_KEY_UNKNOWN.
   */
  trustOnFirstUse?: boolean;
  /** Called with the key pinned on first use, before any command runs; a throw refuses the host. */
  onPin?: (pin: { host: string; port: number; fingerprint: string }) => void | Promise<void>;
}

export interface SshCommandRunnerOptions {
  host: string;
  /** Default 22. */
  port?: number;
  username: string;
  /** The private key itself (OpenSSH or PEM text), not its path. */
  privateKey: string | Buffer;
  passphrase?: string;
  hostKey: HostKeyPolicy;
  /**
   * Channels open at once on the connection; further commands wait their turn. Default 8:
   * OpenSSH's MaxSessions is 10 and a channel over it fails with "Channel open failure".
   */
  maxChannels?: number;
  /** Timeout for calls that give none (connecting and queueing included). Default 30 s. */
  defaultTimeoutMs?: number;
  /** Output limit for calls that give none, per stream. Default 16 MiB. */
  defaultMaxOutputBytes?: number;
  /** Bound on one connection attempt (TCP, handshake, authentication). Default 10 s. */
  connectTimeoutMs?: number;
  /** Connection attempts before SSH_CONNECT_FAILED, with doubling delays between them. Default 4. */
  connectAttempts?: number;
  /** First delay between connection attempts; doubles up to maxBackoffMs. Default 250 ms. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** SSH keepalives, so a dead peer is noticed between commands. Default 15 s; 0 turns them off. */
  keepaliveIntervalMs?: number;
  logger?: Logger;
}

export const DEFAULT_SSH_MAX_CHANNELS = 8;

/** A long-lived command started by spawn(): its streams, a kill that cannot be ignored, and its end. */
export interface InteractiveProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Its process ID where it runs (remote: the SSH session's process-group leader, which it is). */
  readonly pid: number;
  /** SIGKILL to the command and all it started (a stopped process too); `ended` settles after. */
  kill(): void;
  /** Settles when the command has ended (by itself, killed, or with its connection), with its exit status if it had one. */
  readonly ended: Promise<{ exitCode: number | null }>;
}
const MESSAGE_STDERR_CHARS = 2_000;
/**
 * Every command line starts by writing `__quantix_pid=<PID>` to stderr: the session's PID, which
 * OpenSSH makes a process-group leader, so a timeout can kill the command and all it started.
 * The line is taken off stderr before the caller sees it; anything a login shell printed before
 * it (a noisy profile) is kept. Past PID_SEARCH_MAX bytes without it, the search stops.
 */
const PID_MARKER = /^__quantix_pid=([1-9][0-9]*)$/;
const PID_SEARCH_MAX = 4_096;
/** How long an interrupted command may take to say its PID before its channel is just closed. */
const PID_WAIT_MS = 2_000;
const KILL_TIMEOUT_MS = 5_000;
/** Tries at opening a channel that the server refused for want of a free session (see exec). */
const OPEN_ATTEMPTS = 6;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Interruption =
  | { kind: 'timeout' }
  | { kind: 'output-limit'; stream: 'stdout' | 'stderr' }
  | { kind: 'aborted'; reason: unknown }
  | { kind: 'connection-lost'; reason: unknown };

/** Raised inside the host verifier so the connect error can be told apart from a network one. */
class HostKeyRefusal {
  constructor(readonly error: QuantixError) {}
}

/**
 * Runs commands on one remote host over one persistent SSH connection (ssh2), opened on first
 * use and reused by every command; a lost connection is re-opened by the next command, with
 * backoff between failed attempts. At most `maxChannels` commands run at once, the rest queue.
 *
 * The argv is sent as one command line in which every word is quoted by `quoteShellArg`, so the
 * remote login shell (which must be a POSIX shell: sh, bash, dash, zsh) passes each argument to
 * the program literally. A small launcher around it (launcherLine) reports the session's process
 * group and kills it when the channel's input ends: a timeout, abort or output overflow kills the
 * group from another channel and closes the channel, and a command whose channel is closed — by
 * close(), or with a lost connection — is killed with everything it started, never left running.
 *
 * The host's key is checked against a pinned SHA-256 fingerprint before authentication; no
 * command runs on a host whose key is unknown or changed.
 */
export class SshCommandRunner implements CommandRunner {
  readonly target: string;
  private readonly host: string;
  private readonly port: number;
  private readonly options: SshCommandRunnerOptions;
  private pinnedFingerprint: string | null;
  private readonly maxChannels: number;
  private readonly defaultTimeoutMs: number;
  private readonly defaultMaxOutputBytes: number;
  private connection: Promise<SshClient> | null = null;
  private activeChannels = 0;
  private readonly waiting: { grant: () => void; refuse: (reason: unknown) => void }[] = [];
  private readonly inFlight = new Map<ClientChannel, { client: SshClient; interrupt: (why: Interruption) => void }>();
  private closed = false;
  private connects = 0;
  private killing: Promise<void> = Promise.resolve();

  constructor(options: SshCommandRunnerOptions) {
    if (!options.host || typeof options.host !== 'string') {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'An SSH runner needs a host');
    }
    if (!options.username) throw new QuantixError(ErrorCode.INVALID_INPUT, 'An SSH runner needs a username');
    this.options = options;
    this.host = options.host;
    this.port = options.port ?? 22;
    this.target = `ssh://${options.username}@${options.host}:${this.port}`;
    this.pinnedFingerprint = options.hostKey.fingerprint ? normalizeFingerprint(options.hostKey.fingerprint) : null;
    // Neither a fingerprint nor trust on first use is allowed: the first connection then fails
    // with SSH_HOST_KEY_UNKNOWN naming the key offered, which is how a person learns what to pin.
    this.maxChannels = Math.max(1, options.maxChannels ?? DEFAULT_SSH_MAX_CHANNELS);
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.defaultMaxOutputBytes = options.defaultMaxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  }

  /** The fingerprint in force: the one given, or the one pinned on first use. */
  get hostFingerprint(): string | null {
    return this.pinnedFingerprint;
  }

  /** Connections opened so far (1 while the first one lasts); for tests and diagnostics. */
  get connectionCount(): number {
    return this.connects;
  }

  /** Opens the connection now rather than on the first command; checks the host key and login. */
  async connect(): Promise<void> {
    await this.client();
  }

  async run(options: RunCommandOptions): Promise<CommandResult> {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, `The SSH runner for ${this.target} is closed`);
    const argv = [...options.argv];
    const commandLine = this.commandLine(options);
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const maxOutputBytes = options.maxOutputBytes ?? this.defaultMaxOutputBytes;
    const started = performance.now();
    const base = { argv, target: this.target };
    if (options.signal?.aborted)
      throw this.interruptedError(argv, { kind: 'aborted', reason: options.signal.reason }, timeoutMs, '', '');

    // One deadline and one abort for the whole call: connecting and waiting for a channel count.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort('timeout'), timeoutMs);
    const onAbort = () => deadline.abort('aborted');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const stopped = (): QuantixError =>
      deadline.signal.reason === 'timeout'
        ? this.interruptedError(argv, { kind: 'timeout' }, timeoutMs, '', '')
        : this.interruptedError(argv, { kind: 'aborted', reason: options.signal?.reason }, timeoutMs, '', '');

    let holdsChannel = false;
    try {
      const client = await raceAbort(this.client(), deadline.signal, stopped);
      await raceAbort(this.acquireChannel(), deadline.signal, stopped, () => {
        // Granted after the deadline: hand the slot back.
        this.releaseChannel();
      });
      holdsChannel = true;
      return await this.exec({
        client,
        commandLine,
        argv,
        options,
        timeoutMs,
        maxOutputBytes,
        started,
        deadline,
        base,
      });
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (holdsChannel) this.releaseChannel();
    }
  }

  /**
   * Starts a long-lived command with its input, output and errors as streams (an interactive
   * `virsh`, say), on a channel of its own that counts against maxChannels until it ends. The
   * argv is quoted as for run() and the command gets the same locale. The session's PID is read
   * first, so kill() can SIGKILL its whole process group from another channel — a stopped or
   * hung process included; ending its input (or losing the connection) lets a well-behaved one exit.
   */
  async spawn(options: {
    argv: readonly string[];
    env?: Record<string, string>;
    timeoutMs?: number;
  }): Promise<InteractiveProcess> {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, `The SSH runner for ${this.target} is closed`);
    const argv = [...options.argv];
    // run()'s command words (cd, env, the quoted argv) without its launcher: the program reads the channel itself.
    const words = this.commandLine({ argv, env: options.env }, (command) => command);
    const line = `echo "__quantix_pid=$$" >&2; ${words}`;
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const stopped = () => this.interruptedError(argv, { kind: 'timeout' }, timeoutMs, '', '');
    const client = await raceAbort(this.client(), deadline, stopped);
    await raceAbort(this.acquireChannel(), deadline, stopped, () => this.releaseChannel());
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.releaseChannel();
    };
    try {
      const open = () =>
        new Promise<ClientChannel>((resolve, reject) => {
          try {
            client.exec(line, (error, opened) => (error ? reject(error) : resolve(opened)));
          } catch (error) {
            reject(error);
          }
        });
      let channel: ClientChannel | undefined;
      for (let attempt = 1; !channel; attempt++) {
        try {
          channel = await open();
        } catch (error) {
          // As in run(): a session table briefly full after a burst; nothing ran yet.
          if (!(error instanceof Error && /open failure/i.test(error.message)) || attempt >= OPEN_ATTEMPTS) throw error;
          await new Promise((resolve) => setTimeout(resolve, 5 * 2 ** attempt));
        }
      }
      const stderr = new PassThrough();
      let pid: number | null = null;
      let exited = false;
      let exitCode: number | null = null;
      channel.on('exit', (code: number | null) => {
        exitCode = typeof code === 'number' ? code : null;
      });
      const ended = new Promise<{ exitCode: number | null }>((resolve) => {
        channel.on('close', () => {
          exited = true;
          this.inFlight.delete(channel);
          release();
          stderr.end();
          resolve({ exitCode });
        });
      });
      channel.on('error', () => undefined);
      const kill = () => {
        if (exited) return;
        if (pid !== null) this.killRemoteGroup(client, pid);
        channel.close();
      };
      this.inFlight.set(channel, { client, interrupt: () => kill() });
      const sessionPid = await new Promise<number>((resolve, reject) => {
        let head = Buffer.alloc(0);
        const timer = setTimeout(() => {
          kill();
          reject(stopped());
        }, timeoutMs);
        const onData = (chunk: Buffer) => {
          if (pid !== null) {
            stderr.write(chunk);
            return;
          }
          head = Buffer.concat([head, chunk]);
          const newline = head.indexOf(0x0a);
          if (newline === -1 && head.length < PID_SEARCH_MAX) return;
          const found = PID_MARKER.exec(head.subarray(0, Math.max(newline, 0)).toString('latin1'));
          clearTimeout(timer);
          if (!found) {
            kill();
            return reject(
              new QuantixError(
                ErrorCode.COMMAND_FAILED,
                `Command '${argv[0]}' on ${this.target} could not be started`,
                {
                  details: { argv, target: this.target, stderr: head.toString('utf8'), reason: 'no-session-pid' },
                },
              ),
            );
          }
          pid = Number(found[1]);
          stderr.write(head.subarray(newline + 1));
          resolve(pid);
        };
        channel.stderr.on('data', onData);
        void ended.then(() => {
          clearTimeout(timer);
          if (pid === null)
            reject(
              new QuantixError(ErrorCode.COMMAND_FAILED, `Command '${argv[0]}' on ${this.target} ended at once`, {
                details: { argv, target: this.target, stderr: head.toString('utf8'), reason: 'session-ended' },
              }),
            );
        });
      });
      return { stdin: channel, stdout: channel, stderr, pid: sessionPid, kill, ended };
    } catch (error) {
      release();
      if (isQuantixError(error)) throw error;
      throw new QuantixError(
        ErrorCode.COMMAND_FAILED,
        `Command '${argv[0]}' could not be started on ${this.target}: ${error instanceof Error ? error.message : String(error)}`,
        { details: { argv, target: this.target, reason: 'channel-open-failed' }, cause: error },
      );
    }
  }

  /** Kills the commands still running (their calls reject), ends the connection, refuses further calls. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const reason = new QuantixError(ErrorCode.INSTANCE_CLOSED, `The SSH runner for ${this.target} was closed`);
    for (const waiter of this.waiting.splice(0)) waiter.refuse(reason);
    for (const { interrupt } of [...this.inFlight.values()]) interrupt({ kind: 'aborted', reason });
    // Let the kills just queued go out before the connection ends (ending it kills the rest: see launcherLine).
    await this.killing;
    const pending = this.connection;
    this.connection = null;
    if (pending) {
      try {
        const client = await pending;
        await new Promise<void>((resolve) => {
          client.once('close', () => resolve());
          client.end();
          setTimeout(resolve, 1_000).unref();
        });
      } catch {
        // Never connected: nothing to end.
      }
    }
  }

  private commandLine(
    options: Pick<RunCommandOptions, 'argv' | 'env' | 'cwd' | 'stdin'>,
    launch: (command: string) => string = (command) => launcherLine(command, stdinBytes(options.stdin).length),
  ): string {
    if (!Array.isArray(options.argv) || options.argv.length === 0 || !options.argv[0]) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'A command needs an argv with the program first', {
        details: { argv: options.argv },
      });
    }
    const words: string[] = [];
    if (options.cwd !== undefined) words.push(`cd -- ${quoteShellArg(options.cwd)} &&`);
    words.push('exec');
    // The remote login's locale (/etc/default/locale, sshd SetEnv/AcceptEnv) must not change what
    // we parse: every command gets COMMAND_LOCALE_ENV, as from the local runner, under the caller's env.
    const env = Object.entries({ ...COMMAND_LOCALE_ENV, ...options.env });
    if (env.length > 0) {
      words.push('env');
      for (const [name, value] of env) {
        if (!ENV_NAME.test(name)) {
          throw new QuantixError(
            ErrorCode.INVALID_INPUT,
            `Environment variable name ${JSON.stringify(name)} is not valid`,
            {
              details: { name },
            },
          );
        }
        words.push(quoteShellArg(`${name}=${value}`));
      }
    }
    words.push(quoteArgv(options.argv));
    return launch(words.join(' '));
  }

  private exec(call: {
    client: SshClient;
    commandLine: string;
    argv: string[];
    options: RunCommandOptions;
    timeoutMs: number;
    maxOutputBytes: number;
    started: number;
    deadline: AbortController;
    base: { argv: string[]; target: string };
  }): Promise<CommandResult> {
    const { client, commandLine, argv, options, timeoutMs, maxOutputBytes, started, deadline, base } = call;
    return new Promise<CommandResult>((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      const sizes = { stdout: 0, stderr: 0 };
      let channel: ClientChannel | undefined;
      let settled = false;
      let exit: { code: number | null; signal: string | null } | undefined;
      // The remote session's PID (its process group), read from the first line of stderr.
      let pidLine: Buffer | null = Buffer.alloc(0);
      let remotePid: number | null = null;
      let killWanted = false;
      let closed = false;
      const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');

      const kill = () => {
        if (closed || exit) return;
        if (remotePid !== null) {
          this.killRemoteGroup(client, remotePid);
          channel?.close();
          return;
        }
        // The shell has not said its PID yet: kill as soon as it does, or give up on the channel.
        killWanted = true;
        setTimeout(() => channel?.close(), PID_WAIT_MS).unref();
      };
      const finish = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        deadline.signal.removeEventListener('abort', onDeadline);
        outcome();
      };
      const interrupt = (why: Interruption) => {
        if (why.kind !== 'connection-lost') kill();
        finish(() => reject(this.interruptedError(argv, why, timeoutMs, text(stdout), text(stderr))));
      };
      const onDeadline = () =>
        interrupt(
          deadline.signal.reason === 'timeout'
            ? { kind: 'timeout' }
            : { kind: 'aborted', reason: options.signal?.reason },
        );
      deadline.signal.addEventListener('abort', onDeadline, { once: true });

      let attempt = 0;
      const open = () => {
        try {
          client.exec(commandLine, onOpen);
        } catch (error) {
          // ssh2 throws at once when the connection is already gone.
          interrupt({ kind: 'connection-lost', reason: error });
        }
      };
      const onOpen = (error: Error | undefined, opened: ClientChannel) => {
        if (error) {
          // OpenSSH frees a finished session a moment after its channel closes, so a burst can
          // briefly find its session table full. Nothing ran yet: try again shortly.
          if (/open failure/i.test(error.message) && ++attempt < OPEN_ATTEMPTS && !settled) {
            setTimeout(open, 5 * 2 ** attempt);
            return;
          }
          return finish(() =>
            reject(
              new QuantixError(
                ErrorCode.COMMAND_FAILED,
                `Command '${argv[0]}' could not be started on ${this.target}: ${error.message}`,
                { details: { ...base, reason: 'channel-open-failed' }, cause: error },
              ),
            ),
          );
        }
        channel = opened;
        this.inFlight.set(opened, { client, interrupt });
        const keep = (stream: 'stdout' | 'stderr', chunks: Buffer[], chunk: Buffer) => {
          if (settled || chunk.length === 0) return;
          sizes[stream] += chunk.length;
          if (sizes[stream] > maxOutputBytes) return interrupt({ kind: 'output-limit', stream });
          chunks.push(chunk);
          options.onOutput?.(stream, chunk);
        };
        opened.on('data', (chunk: Buffer) => keep('stdout', stdout, chunk));
        opened.stderr.on('data', (chunk: Buffer) => {
          if (pidLine === null) return keep('stderr', stderr, chunk);
          pidLine = Buffer.concat([pidLine, chunk]);
          let newline = pidLine.indexOf(0x0a);
          while (newline !== -1) {
            const line = pidLine.subarray(0, newline);
            const rest: Buffer = pidLine.subarray(newline + 1);
            const found = PID_MARKER.exec(line.toString('latin1'));
            if (found) {
              remotePid = Number(found[1]);
              pidLine = null;
              keep('stderr', stderr, rest);
              if (killWanted) kill();
              return;
            }
            keep('stderr', stderr, pidLine.subarray(0, newline + 1));
            pidLine = rest;
            newline = pidLine.indexOf(0x0a);
          }
          if (pidLine.length > PID_SEARCH_MAX) {
            keep('stderr', stderr, pidLine);
            pidLine = null;
          }
        });
        opened.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ? `SIG${signal}` : null };
        });
        opened.on('close', () => {
          closed = true;
          // A stderr without the marker line (it never came) is still the command's stderr.
          if (pidLine?.length) keep('stderr', stderr, pidLine);
          pidLine = null;
          this.inFlight.delete(opened);
          finish(() => {
            const code = exit?.code ?? null;
            const result: CommandResult = {
              exitCode: code ?? -1,
              stdout: text(stdout),
              stderr: text(stderr),
              durationMs: Math.round(performance.now() - started),
            };
            if (code === 0 || (code !== null && options.allowNonZeroExit)) return resolve(result);
            const how =
              code !== null
                ? `exited with status ${code}`
                : exit?.signal
                  ? `was killed by ${exit.signal}`
                  : 'ended without an exit status (connection lost?)';
            const said = result.stderr.trim().slice(0, MESSAGE_STDERR_CHARS);
            reject(
              new QuantixError(
                ErrorCode.COMMAND_FAILED,
                `Command '${argv[0]}' on ${this.target} ${how}${said ? `: ${said}` : ''}`,
                {
                  details: {
                    ...base,
                    exitCode: code,
                    signal: exit?.signal ?? null,
                    stderr: result.stderr,
                    stdout: result.stdout,
                    durationMs: result.durationMs,
                  },
                },
              ),
            );
          });
        });
        // A command may exit without reading its input; a write after that is not our failure.
        opened.on('error', () => undefined);
        // The input, and no EOF: the launcher (see launcherLine) counts the bytes out to the command
        // and takes the end of the channel's input as the sign to kill what is left of the session.
        const input = stdinBytes(options.stdin);
        if (input.length > 0) opened.write(input);
        if (settled) kill();
      };
      open();
    });
  }

  /**
   * SIGKILL to a remote command's process group, from a channel of its own. An SSH "signal"
   * request would be simpler, but OpenSSH refuses it for root logins ("session signalling
   * requires privilege separation"), and root is who drives virsh. Kills run one at a time, on
   * the two sessions OpenSSH allows beyond maxChannels, and outside the command queue so a full
   * queue cannot hold them up.
   */
  private killRemoteGroup(client: SshClient, pid: number): void {
    const line = `exec ${quoteArgv(['kill', '-s', 'KILL', '--', `-${pid}`])}`;
    this.killing = this.killing.then(
      () =>
        new Promise<void>((done) => {
          const giveUp = setTimeout(done, KILL_TIMEOUT_MS);
          giveUp.unref();
          const onOpen = (error: Error | undefined, channel: ClientChannel) => {
            if (error) {
              this.options.logger?.warn(
                { target: this.target, pid, err: error.message },
                'Could not kill a remote command',
              );
              clearTimeout(giveUp);
              return done();
            }
            channel.on('close', () => {
              clearTimeout(giveUp);
              done();
            });
            channel.on('data', () => undefined);
            channel.stderr.on('data', () => undefined);
            channel.end();
          };
          try {
            client.exec(line, onOpen);
          } catch {
            // The connection is gone, and with it the session the command ran in.
            clearTimeout(giveUp);
            done();
          }
        }),
    );
  }

  private async client(): Promise<SshClient> {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, `The SSH runner for ${this.target} is closed`);
    if (!this.connection) {
      const connecting = this.connectWithRetry();
      this.connection = connecting;
      connecting.catch(() => {
        if (this.connection === connecting) this.connection = null;
      });
    }
    return this.connection;
  }

  private async connectWithRetry(): Promise<SshClient> {
    const attempts = Math.max(1, this.options.connectAttempts ?? 4);
    let delay = this.options.initialBackoffMs ?? 250;
    const maxDelay = this.options.maxBackoffMs ?? 5_000;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (this.closed) break;
      try {
        return await this.connectOnce();
      } catch (error) {
        // A refused host key is an answer, not a fault: retrying cannot change it.
        if (error instanceof HostKeyRefusal) throw error.error;
        lastError = error;
        this.options.logger?.warn(
          { target: this.target, attempt, err: String(error) },
          'SSH connection attempt failed',
        );
        if (attempt < attempts) {
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(maxDelay, delay * 2);
        }
      }
    }
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, `The SSH runner for ${this.target} was closed`);
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    throw new QuantixError(
      NodeRuntimeErrorCode.SSH_CONNECT_FAILED,
      `Could not connect to ${this.target} after ${attempts} attempt(s): ${message}`,
      {
        details: { target: this.target, attempts, level: (lastError as { level?: string })?.level ?? null },
        cause: lastError,
      },
    );
  }

  private connectOnce(): Promise<SshClient> {
    return new Promise<SshClient>((resolve, reject) => {
      const client = new Client();
      let refusal: HostKeyRefusal | null = null;
      let ready = false;
      client.on('ready', () => {
        ready = true;
        this.connects++;
        this.options.logger?.debug({ target: this.target }, 'SSH connection ready');
        resolve(client);
      });
      client.on('error', (error) => {
        if (!ready) reject(refusal ?? error);
        else this.options.logger?.warn({ target: this.target, err: error.message }, 'SSH connection error');
      });
      client.on('close', () => {
        if (!ready) return reject(refusal ?? new Error('connection closed during the handshake'));
        this.dropConnection(client);
      });
      client.connect({
        host: this.host,
        port: this.port,
        username: this.options.username,
        privateKey: this.options.privateKey,
        passphrase: this.options.passphrase,
        readyTimeout: this.options.connectTimeoutMs ?? 10_000,
        keepaliveInterval: this.options.keepaliveIntervalMs ?? 15_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
          this.verifyHostKey(key).then(
            () => verify(true),
            (error: QuantixError) => {
              refusal = new HostKeyRefusal(error);
              verify(false);
            },
          );
        },
      });
      // Small request/response packets: without this, Nagle and delayed ACKs add ~40 ms to each.
      client.setNoDelay(true);
    });
  }

  private async verifyHostKey(key: Buffer): Promise<void> {
    const offered = sshKeyFingerprint(key);
    const details = { target: this.target, offered, pinned: this.pinnedFingerprint };
    if (this.pinnedFingerprint) {
      if (offered === this.pinnedFingerprint) return;
      throw new QuantixError(
        NodeRuntimeErrorCode.SSH_HOST_KEY_MISMATCH,
        `The host key of ${this.target} has changed: it offered ${offered}, but ${this.pinnedFingerprint} is pinned. Nothing was run. If the host was reinstalled, pin the new fingerprint; otherwise something else answers at this address.`,
        { details },
      );
    }
    if (!this.options.hostKey.trustOnFirstUse) {
      throw new QuantixError(
        NodeRuntimeErrorCode.SSH_HOST_KEY_UNKNOWN,
        `The host key of ${this.target} is not known (it offered ${offered}). Nothing was run. Pin that fingerprint after checking it with \`ssh-keygen -lf\` on the host, or ask for trust on first use.`,
        { details },
      );
    }
    await this.options.hostKey.onPin?.({ host: this.host, port: this.port, fingerprint: offered });
    this.pinnedFingerprint = offered;
    this.options.logger?.info({ target: this.target, fingerprint: offered }, 'SSH host key pinned on first use');
  }

  /** The connection ended: forget it (the next command reconnects) and fail what ran on it. */
  private dropConnection(client: SshClient): void {
    void this.connection
      ?.then((current) => {
        if (current === client) this.connection = null;
      })
      .catch(() => undefined);
    const reason = new Error(`the SSH connection to ${this.target} was lost`);
    for (const { client: owner, interrupt } of [...this.inFlight.values()]) {
      if (owner === client) interrupt({ kind: 'connection-lost', reason });
    }
  }

  private acquireChannel(): Promise<void> {
    if (this.activeChannels < this.maxChannels) {
      this.activeChannels++;
      return Promise.resolve();
    }
    return new Promise<void>((grant, refuse) => this.waiting.push({ grant, refuse }));
  }

  private releaseChannel(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter, so the count never dips and overshoots.
    if (next) next.grant();
    else this.activeChannels--;
  }

  private interruptedError(
    argv: string[],
    why: Interruption,
    timeoutMs: number,
    stdout: string,
    stderr: string,
  ): QuantixError {
    const program = argv[0];
    const details = { argv, target: this.target, stdout, stderr };
    switch (why.kind) {
      case 'timeout':
        return new QuantixError(
          ErrorCode.COMMAND_TIMEOUT,
          `Command '${program}' on ${this.target} did not finish within ${timeoutMs} ms`,
          { details: { ...details, timeoutMs } },
        );
      case 'output-limit':
        return new QuantixError(
          ErrorCode.COMMAND_FAILED,
          `Command '${program}' on ${this.target} wrote more ${why.stream} than the output limit allows; it was killed`,
          { details: { ...details, reason: 'output-limit', stream: why.stream } },
        );
      case 'aborted':
        return new QuantixError(ErrorCode.COMMAND_FAILED, `Command '${program}' on ${this.target} was aborted`, {
          details: { ...details, reason: 'aborted' },
          cause: why.reason,
        });
      case 'connection-lost':
        return new QuantixError(
          ErrorCode.COMMAND_FAILED,
          `Command '${program}' on ${this.target} was cut off: the connection was lost (it may or may not have finished)`,
          { details: { ...details, reason: 'connection-lost' }, cause: why.reason },
        );
    }
  }
}

/** Waits for `promise`, or rejects with `stopped()` once `signal` aborts; `late` undoes a result that came too late. */
function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  stopped: () => Error,
  late?: (value: T) => void,
): Promise<T> {
  if (signal.aborted) {
    promise.then(late, () => undefined);
    return Promise.reject(stopped());
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const onAbort = () => {
      if (done) return;
      done = true;
      reject(stopped());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (done) return late?.(value);
        done = true;
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        if (done) return;
        done = true;
        reject(error);
      },
    );
  });
}

function stdinBytes(stdin: RunCommandOptions['stdin']): Buffer {
  return stdin === undefined ? Buffer.alloc(0) : Buffer.from(stdin);
}

/**
 * The command line sent for `command` (already quoted, starting with `exec`): a small POSIX-sh
 * launcher around it, so that no remote process outlives its call.
 *
 * - It writes the session's PID first (`__quantix_pid=<PID>` on stderr). OpenSSH makes the session
 *   a process-group leader, so a timeout or abort kills the command and all it started with
 *   `kill -KILL -<PID>` from another channel (OpenSSH refuses "signal" requests for root).
 * - The command reads exactly `inputBytes` bytes of the channel's input (`head -c`), then EOF.
 *   A watcher keeps reading the channel's input: the runner never sends EOF, so the input ends
 *   only when the channel or the connection does — closed after a timeout, by close(), or lost
 *   with the network. Then, with the session still there, the watcher kills its process group.
 * - When the command ends by itself, the watcher gets SIGKILL by its PID (it says it first, on
 *   the pipe, before any input), then the rest of the group (whatever the command left running)
 *   gets SIGTERM, and the shell exits with the command's status. The watcher is killed by PID and
 *   with KILL because a SIGTERM to the group can reach it between fork and exec, while it still
 *   has the session shell's `trap : TERM`: it survived, kept reading an input that never ends,
 *   and the call hung until its timeout (about 1 command in 60 on a loaded machine).
 *
 * Every word of the command is quoted by quoteArgv; nothing here comes from the caller.
 */
export function launcherLine(command: string, inputBytes: number): string {
  const feed = inputBytes > 0 ? `head -c ${inputBytes}; ` : '';
  // Reads the channel's input (a socket OpenSSH also uses for stdout, so it must not outlive the
  // command): its own PID first, then the command's bytes, then nothing until the input ends. A
  // fresh `sh -c` so that `$$` is the watcher's own PID ($1 is the session's).
  const watcher = `{ exec sh -c 'echo $$; ${feed}exec >&-; cat >/dev/null; kill -0 $1 2>/dev/null && kill -s KILL -- -$1' sh $$; } <&3 3<&- 2>/dev/null`;
  // Reads the watcher's PID off the pipe (read takes one byte at a time from a pipe, so the
  // command's input starts right after it); after the command, SIGKILL to the watcher and
  // SIGTERM to the rest of the group but not to this side, then the command's status.
  const runner = `{ read -r w; ( ${command} ) 3<&-; s=$?; kill -s KILL "$w" 2>/dev/null; trap '' TERM; kill -s TERM -- -$$ 2>/dev/null; exit $s; }`;
  // The session shell survives that SIGTERM by catching it; subshells start with it at default.
  return `echo "__quantix_pid=$$" >&2; trap : TERM; exec 3<&0; ${watcher} | ${runner}`;
}
