/**
 * The Images page's resumable upload in headless Chromium (Debian's package, playwright-core)
 * against the all-in-one control plane, whose node agent stores the ISO in its local pool. The
 * browser goes offline while the second 8 MiB request is on its way (that request is cut), comes
 * back, and the page's tus-js-client asks the server's offset and sends only the rest. A qcow2
 * uploaded the same way goes into the pool's disk images.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeQcow2 } from '@quantix/images-cloud/testing';
import { buildIso, REAL_MEDIA, requireIsoTools } from '@quantix/images-iso/testing';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_POOL_ID } from '../src/cli/up.js';
import { startStorageSystem, type TestSystem, waitFor } from './harness.js';
import { launchChromium, screenshot, watchPageErrors } from './ui/browser.js';
import { ensureUiBuilt } from './ui/helpers.js';

const CHUNK = 8 * 1024 * 1024;

describe('the Images page uploads resumably', () => {
  let work: string;
  let browser: Browser;
  let system: Awaited<ReturnType<typeof startStorageSystem>>['system'];
  let api: TestSystem['api'];

  beforeAll(async () => {
    requireIsoTools();
    ensureUiBuilt();
    work = await mkdtemp(join(tmpdir(), 'quantix-tus-ui-'));
    ({ system, api } = await startStorageSystem(join(work, 'data')));
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await system?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('finishes an upload whose connection dropped midway, from the server’s offset, and the ISO is ready', async () => {
    const isoPath = await buildIso(join(work, 'browser.iso'), { ...REAL_MEDIA.debian12, padBytes: 20 * 1024 * 1024 });
    const iso = await readFile(isoPath);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      const problems = watchPageErrors(page);
      const seen: string[] = [];
      let patches = 0;
      let cut = false;
      await page.route('**/api/v1/uploads/tus**', async (route) => {
        const request = route.request();
        seen.push(`${request.method()} ${request.headers()['upload-offset'] ?? ''}`.trim());
        if (request.method() === 'PATCH' && ++patches === 2) {
          // The link goes down while this request is on its way.
          await context.setOffline(true);
          cut = true;
          await route.abort('internetdisconnected');
          return;
        }
        await route.continue();
      });
      await page.goto(`${system.url}/images#token=${encodeURIComponent(system.apiToken)}`);
      await page.getByLabel('File', { exact: true }).setInputFiles(isoPath);
      await page.getByLabel('Into ISO pool', { exact: true }).selectOption(LOCAL_POOL_ID);
      await page.getByRole('button', { name: 'Upload', exact: true }).click();

      await waitFor(async () => cut, 'the second request to be cut');
      // Offline: the upload waits (no error shown), with the first chunk on the server.
      await page.getByRole('progressbar').waitFor();
      expect(await page.getByRole('alert').count()).toBe(0);
      await screenshot(page, 'tus-upload-offline');
      await context.setOffline(false);

      await page.getByRole('status').filter({ hasText: 'Uploaded browser.iso.' }).waitFor({ timeout: 90_000 });
      // After the cut the client asked where the server was, then sent from there on.
      const afterCut = seen.slice(seen.indexOf('PATCH 8388608') + 1);
      expect(afterCut).toContain('HEAD');
      expect(afterCut.filter((s) => s === 'PATCH 0')).toEqual([]);
      expect(afterCut).toContain(`PATCH ${CHUNK}`);

      await waitFor(
        async () => {
          const { body } = await api('GET', '/images?text=browser.iso');
          return body.images?.[0]?.phase === 'ready';
        },
        'the uploaded ISO to be ready',
        60_000,
      );
      const { body } = await api('GET', '/images?text=browser.iso');
      expect(body.images[0].checksum).toEqual({
        algorithm: 'sha256',
        value: createHash('sha256').update(iso).digest('hex'),
      });
      const stored = await readFile(join(work, 'data', 'pools', 'local', 'iso', 'browser.iso'));
      expect(stored.equals(iso)).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  }, 240_000);

  it('uploads a qcow2 disk image into a pool of disk images, and it is ready with its format and checksum', async () => {
    const disk = await makeQcow2(work, 'browser-disk.qcow2', 2);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      const problems = watchPageErrors(page);
      await page.goto(`${system.url}/images#token=${encodeURIComponent(system.apiToken)}`);
      await page.getByLabel('File', { exact: true }).setInputFiles(join(work, 'browser-disk.qcow2'));
      // A disk image goes into a pool that holds them: the pool field says so.
      await page.getByLabel('Into disk image pool', { exact: true }).selectOption(LOCAL_POOL_ID);
      await page.getByRole('button', { name: 'Upload', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'Uploaded browser-disk.qcow2.' }).waitFor({ timeout: 90_000 });
      await waitFor(
        async () => (await api('GET', '/images?text=browser-disk')).body.images?.[0]?.phase === 'ready',
        'the uploaded disk image to be ready',
        60_000,
      );
      const { body } = await api('GET', '/images?text=browser-disk');
      expect(body.images[0]).toMatchObject({
        kind: 'cloud',
        format: 'qcow2',
        checksum: { algorithm: 'sha256', value: createHash('sha256').update(disk).digest('hex') },
        location: { poolId: LOCAL_POOL_ID, relPath: 'images/browser-disk.qcow2' },
      });
      const stored = await readFile(join(work, 'data', 'pools', 'local', 'images', 'browser-disk.qcow2'));
      expect(stored.equals(disk)).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  }, 240_000);
});
