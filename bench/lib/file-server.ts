import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * The plain HTTP file server the download and export benches compare against
 * (bench/__fixtures__/file-server.mjs), in a process of its own so it competes for the cores as
 * a real server would; resolves once it listens.
 */
export async function startFileServer(
  file: string,
  size: number,
): Promise<{ port: number; stop: () => Promise<void> }> {
  const server = spawn(
    process.execPath,
    [join(import.meta.dirname, '../__fixtures__/file-server.mjs'), file, String(size)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: server.stdout });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(server, 'exit').then(() => {
      throw new Error('the file server exited before it was ready');
    }),
  ])) as [string];
  return {
    port: Number(/^READY (\d+)$/.exec(line)?.[1]),
    stop: async () => {
      server.kill('SIGTERM');
      await once(server, 'exit');
    },
  };
}
