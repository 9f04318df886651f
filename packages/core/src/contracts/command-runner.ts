/**
 * Runs a program with an argument vector, locally or on a remote host. Implementations never
 * build a shell string from `argv` by concatenation: a local runner spawns without a shell, a
 * remote one quotes each argument with the one quoting function it has. Every command runs in
 * the C locale (COMMAND_LOCALE_ENV: LC_ALL=C, LANG=C) unless the call's `env` sets those itself,
 * because callers parse output and match messages.
 */
export interface CommandRunner {
  /** Where commands run, for logs and errors: 'local' or 'ssh://user@host:port'. */
  readonly target: string;
  run(options: RunCommandOptions): Promise<CommandResult>;
  /** Releases connections. Further calls fail. */
  close(): Promise<void>;
}

export interface RunCommandOptions {
  /** Program and arguments; argv[0] is the program. */
  argv: readonly string[];
  /** Milliseconds before the command is killed and COMMAND_TIMEOUT is thrown. Runners have a default. */
  timeoutMs?: number;
  /** Bytes written to the command's standard input, then closed. */
  stdin?: string | Uint8Array;
  /** Largest stdout/stderr kept, in bytes; more fails the command with COMMAND_FAILED. */
  maxOutputBytes?: number;
  /** When false (the default), a non-zero exit status throws COMMAND_FAILED carrying stderr. */
  allowNonZeroExit?: boolean;
  /** Added to the command's environment, over the runner's defaults (COMMAND_LOCALE_ENV included). */
  env?: Record<string, string>;
  cwd?: string;
  signal?: AbortSignal;
  /**
   * Sees output as it arrives (a long command's progress lines), besides collecting it into the
   * result; output beyond maxOutputBytes is not passed on.
   */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}
