import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quoteArgv } from './quote.js';
import { launcherLine } from './runner.js';

// The launcher run by a local `sh` in a session of its own, as sshd runs it: a process-group
// leader whose input (here a pipe this test never closes) does not end while the channel is open.

interface Launch {
  exitCode: number | null;
  stdout: string;
  ms: number;
}

function launch(argv: string[], input: Buffer, limitMs: number): Promise<Launch> {
  const started = Date.now();
  const line = launcherLine(`exec ${quoteArgv(argv)}`, input.length);
  const child = spawn('sh', ['-c', line], { detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
  // A command that ends at once may end the launcher before the input is read (EPIPE): that is fine.
  child.stdin.on('error', () => undefined);
  // More input than the command is given: the launcher must hand over exactly input.length bytes.
  child.stdin.write(Buffer.concat([input, Buffer.from('not for the command')]));
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  return new Promise<Launch>((resolve) => {
    const limit = setTimeout(() => {
      // What a closed channel does: end the input, and the watcher kills the group.
      child.stdin.end();
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    }, limitMs);
    child.on('close', (exitCode) => {
      clearTimeout(limit);
      resolve({ exitCode, stdout, ms: Date.now() - started });
    });
  });
}

describe('launcherLine', () => {
  it('ends with the command, every time, while its input stays open', async () => {
    // A command that ends at once used to race the SIGTERM meant for the watcher: about 1 launch
    // in 60 on a loaded machine hung until its timeout. 200 launches, 8 at a time.
    const results: Launch[] = [];
    for (let round = 0; round < 25; round++) {
      results.push(
        ...(await Promise.all(Array.from({ length: 8 }, () => launch(['sh', '-c', 'exit 3'], Buffer.alloc(0), 5_000)))),
      );
    }
    const hung = results.filter((result) => result.exitCode !== 3);
    expect(hung).toEqual([]);
  });

  it('gives the command exactly its input, then EOF', async () => {
    const result = await launch(['cat'], Buffer.from('five\n'), 5_000);
    expect(result).toMatchObject({ exitCode: 0, stdout: 'five\n' });
  });
});
