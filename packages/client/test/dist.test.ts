/**
 * The built `dist` of @quantix/client, loaded by plain Node (no vitest transform) through the
 * package's exports map, as ESM and as CommonJS, calling a real HTTP server on loopback, so a
 * broken bundle cannot hide behind green source tests.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');
let server: Server;
let url: string;

// The same consumer in both module systems: one call that succeeds, one that fails.
const body = `
  const client = new m.QuantixClient({ baseUrl: process.env.API_URL, token: 't' });
  const pools = await client.request('listPools');
  const error = await client.request('getPool', { params: { id: 'nope' } }).catch((e) => e);
  process.stdout.write(JSON.stringify({ pools, error: [error instanceof m.ApiError, error.status, error.code] }));
`;
const consumers = {
  esm: ['--input-type=module', '-e', `import * as m from '@quantix/client';\n${body}`],
  cjs: ['--input-type=commonjs', '-e', `const m = require('@quantix/client');\n(async () => {${body}})();`],
};

beforeAll(async () => {
  // Answers as the control plane does: the pool list, and NOT_FOUND for any one pool.
  server = createServer((request, response) => {
    const found = request.url === '/api/v1/pools';
    response.writeHead(found ? 200 : 404, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify(found ? { pools: [] } : { error: { code: 'NOT_FOUND', message: 'no such pool', details: {} } }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('built dist of @quantix/client', () => {
  it('exists (npm run build first)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each(Object.entries(consumers))('works from %s: a call, and an error as ApiError', async (_, args) => {
    const { stdout } = await run(process.execPath, args, { cwd: packageRoot, env: { ...process.env, API_URL: url } });
    expect(JSON.parse(stdout)).toEqual({ pools: { pools: [] }, error: [true, 404, 'NOT_FOUND'] });
  });
});
