import { join } from 'node:path';
import { startNodeProcess } from './child.js';

/**
 * The plain HTTP file server the download and export benches compare against
 * (bench/__fixtures__/file-server.mjs), in a process of its own so it competes for the cores as
 * a real server would; resolves once it listens.
 */
export async function startFileServer(
  file: string,
  size: number,
): Promise<{ port: number; stop: () => Promise<void> }> {
  const server = await startNodeProcess(
    [join(import.meta.dirname, '../__fixtures__/file-server.mjs'), file, String(size)],
    'the file server',
  );
  return { port: Number(/^READY (\d+)$/.exec(server.line)?.[1]), stop: server.stop };
}
