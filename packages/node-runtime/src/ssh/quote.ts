import { ErrorCode, QuantixError } from '@quantix/core';

/**
 * Quotes one argument for a POSIX shell: the whole argument in single quotes, each single quote
 * inside written as '\'' (close, escaped quote, reopen). Inside single quotes a POSIX shell reads
 * every byte literally — `$`, backticks, globs, newlines, backslashes — so the argument arrives as
 * it is. This is the one place a command line for a remote shell is made.
 *
 * A NUL byte cannot be passed in an argv at all, so it is refused (INVALID_INPUT).
 */
export function quoteShellArg(arg: string): string {
  if (typeof arg !== 'string' || arg.includes('\0')) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'A command argument must be a string without NUL bytes', {
      details: { arg: String(arg) },
    });
  }
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The argv as one command line for a POSIX shell, every word quoted by quoteShellArg. */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quoteShellArg).join(' ');
}
