/**
 * Writes the API description a started control plane serves to packages/client/openapi.json,
 * where @quantix/client generates its types from (then run `npm run generate -w @quantix/client`;
 * `npm run openapi` here does both). src/http/openapi.integration.test.ts fails while that file
 * differs from what the control plane serves.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix } from '@quantix/core';
import { pino } from 'pino';
import { startControlPlane } from '../src/control-plane.js';

const clientDocumentFile = join(import.meta.dirname, '..', '..', '..', 'packages', 'client', 'openapi.json');

const work = await mkdtemp(join(tmpdir(), 'quantix-openapi-'));
const quantix = await createQuantix({ database: { client: 'pglite' }, logger: pino({ level: 'silent' }) });
try {
  const cp = await startControlPlane({ quantix, apiToken: 'openapi', stagingDir: join(work, 'staging') });
  try {
    const response = await fetch(`${cp.url}/api/v1/openapi.json`);
    // Stable text: the test compares the served document with this file as JSON.
    await writeFile(clientDocumentFile, `${JSON.stringify(await response.json(), null, 2)}\n`);
    process.stdout.write(`wrote ${clientDocumentFile}\n`);
  } finally {
    await cp.close();
  }
} finally {
  await quantix.close();
  await rm(work, { recursive: true, force: true });
}
