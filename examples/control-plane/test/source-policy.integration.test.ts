/**
 * What a node may download, with a real node daemon that knows its control plane by host name
 * (`http://localhost:…`, which used to stop the daemon at start): the control plane's staged
 * uploads and nothing else of that host — not another service on another port, not another path
 * of the control plane, directly or through a redirect.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newToken } from '@quantix/control-plane';
import { createPoolRootPolicy, createQuantix, type Quantix } from '@quantix/core';
import type { startNodeDaemon } from '@quantix/example-node-daemon';
import { createImagesCloudPlugin } from '@quantix/images-cloud';
import { type ImageServer, startImageServer } from '@quantix/images-cloud/testing';
import { createImagesIsoPlugin } from '@quantix/images-iso';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../src/control-plane.js';
import { apiCaller, startNodeWithPool, waitFor } from './harness.js';

const API_TOKEN = newToken();
const silent = pino({ level: 'silent' });

describe('download sources a node accepts', () => {
  let root: string;
  let quantix: Quantix;
  let cp: ControlPlane;
  let node: Awaited<ReturnType<typeof startNodeDaemon>>;
  let otherService: ImageServer;
  let mirror: ImageServer;

  const api = apiCaller(() => cp.url, API_TOKEN);

  const entry = (id: string, sourceUrl: string) => ({
    id,
    name: id,
    description: 'a source the policy must judge',
    kind: 'cloud' as const,
    format: 'qcow2' as const,
    os: {
      family: 'linux' as const,
      distribution: 'x',
      version: '1',
      arch: 'x86_64',
      defaultUser: 'x',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' as const },
    sourceUrl,
    checksum: { algorithm: 'sha256' as const, value: '0'.repeat(64) },
    checksumUrl: null,
    checksumAlgorithm: 'sha256' as const,
  });

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'quantix-sources-'));
    // Another service on this machine, with a file worth stealing.
    otherService = await startImageServer();
    otherService.setFile('/secret.txt', 'not for nodes');
    // A mirror the operator allowed (127.0.0.2), which redirects elsewhere.
    mirror = await startImageServer({ host: '127.0.0.2' });
    quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [
        createImagesCloudPlugin({
          entries: [
            entry('direct-other-port', `${otherService.url}/secret.txt`),
            entry('mirror-to-control-plane', `${mirror.url}/to-cp`),
            entry('mirror-to-other-port', `${mirror.url}/to-other`),
          ],
        }),
        createStorageLocalPlugin({ backend: false }),
        // The ISO reader decides which uploads are kept.
        createImagesIsoPlugin({ osinfo: false }),
      ],
      logger: silent,
    });
    // Pools may be in this test's directory, on the control plane and on the node.
    cp = await startControlPlane({
      quantix,
      apiToken: API_TOKEN,
      stagingDir: join(root, 'staging'),
      poolRoots: createPoolRootPolicy({ allowedRoots: [root] }),
    });
    const port = new URL(cp.url).port;
    mirror.behaviour.redirects['/to-cp'] = `http://localhost:${port}/api/v1/openapi.json`;
    mirror.behaviour.redirects['/to-other'] = `${otherService.url}/secret.txt`;

    node = await startNodeWithPool({
      quantix,
      controlPlaneUrl: `http://localhost:${port}`,
      api,
      root,
      allowSourceAddresses: ['127.0.0.2'],
    });
  });

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await quantix?.close();
    await otherService?.close();
    await mirror?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('connects to a control plane given by host name', () => {
    expect(node.connection.connected).toBe(true);
  });

  it('fetches a staged upload from the control plane', async () => {
    execFileSync('xorriso', ['-as', 'mkisofs', '-V', 'UPLOADED', '-o', join(root, 'up.iso'), join(root, 'pool')], {
      stdio: 'ignore',
    });
    const bytes = readFileSync(join(root, 'up.iso'));
    const response = await fetch(`${cp.url}/api/v1/images/upload?poolId=p1&name=up.iso`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    await waitFor(async () => {
      const image = (await api('GET', `/images/${id}`)).body;
      if (image.phase === 'error') throw new Error(`upload failed: ${image.error?.message}`);
      return image.phase === 'ready';
    }, 'the upload to be ready');
  });

  it('refuses direct-other-port (another service on this machine) at once, as the node judges it, recording nothing', async () => {
    const before = (await api('GET', '/images')).body.total;
    const refused = await api('POST', '/images/download', { catalogId: 'direct-other-port', poolId: 'p1' });
    expect(refused).toMatchObject({ status: 400, body: { error: { code: 'SOURCE_NOT_ALLOWED' } } });
    expect((await api('GET', '/images')).body.total).toBe(before);
    expect(otherService.requestsFor('/secret.txt')).toEqual([]);
  });

  // A redirect is met only when fetching: the download is recorded, and fails there.
  it.each([
    ['mirror-to-control-plane', 'another path of the control plane, through a redirect'],
    ['mirror-to-other-port', 'another service, through a redirect'],
  ])('refuses %s (%s)', async (catalogId) => {
    const started = await api('POST', '/images/download', { catalogId, poolId: 'p1' });
    expect(started.status).toBe(202);
    let image = started.body;
    await waitFor(async () => {
      image = (await api('GET', `/images/${started.body.id}`)).body;
      return image.phase === 'error';
    }, `${catalogId} to fail`);
    expect(image.error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', retryable: false });
    expect(otherService.requestsFor('/secret.txt')).toEqual([]);
  });
});
