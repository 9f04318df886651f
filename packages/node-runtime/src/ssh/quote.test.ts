import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostileArguments } from './hostile.js';
import { quoteArgv, quoteShellArg } from './quote.js';

const run = promisify(execFile);

describe('quoteShellArg', () => {
  it('wraps in single quotes and writes a single quote as close-escape-reopen', () => {
    expect(quoteShellArg('plain')).toBe("'plain'");
    expect(quoteShellArg('')).toBe("''");
    expect(quoteShellArg("it's")).toBe("'it'\\''s'");
    expect(quoteShellArg('$(id)')).toBe("'$(id)'");
    expect(quoteArgv(['printf', '%s', 'a b'])).toBe("'printf' '%s' 'a b'");
  });

  it('refuses a NUL byte, which no argv can carry', () => {
    expect(() => quoteShellArg('a\0b')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
  });

  // A real shell reads the quoted line: the one a remote sshd would hand to the login shell.
  describe.each(['sh', 'bash'])('through %s -c', (shell) => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'quantix-quote-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('delivers every hostile argument byte for byte and runs none of them', async () => {
      const marker = join(dir, 'ran');
      const args = hostileArguments(marker);
      const { stdout } = await run(shell, ['-c', `exec ${quoteArgv(['printf', '%s\\0', ...args])}`], {
        cwd: dir,
        encoding: 'buffer',
      });
      const received = stdout.toString('utf8').split('\0').slice(0, -1);
      expect(received).toEqual(args);
      expect(existsSync(marker)).toBe(false);
    });
  });
});
