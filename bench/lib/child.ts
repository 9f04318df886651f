import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/**
 * A Node process of a bench's own (a server it measures or measures against), started with
 * `args` and waited for until it prints its first line (how it says it is ready); `stop` ends it
 * with SIGTERM. Killed if the bench exits without stopping it: a process left behind would hold
 * the runner's output open.
 */
export async function startNodeProcess(
  args: readonly string[],
  what: string,
): Promise<{ child: ChildProcess; line: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    exited.then(() => {
      throw new Error(`${what} exited before it was ready`);
    }),
  ])) as [string];
  return {
    child,
    line,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
