/**
 * The Images page's "Copy…" (to another pool) in headless Chromium, against a real system (harness.ts:
 * control plane, real node daemon, local pool, a real HTTP mirror): a ready image is copied into
 * a second pool of the node, and its copy shows up Ready with the source's checksum.
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestSystem } from './harness.js';
import { launchChromium, screenshot, watchPageErrors } from './ui/browser.js';
import { ensureUiBuilt, textOf, until } from './ui/helpers.js';
import { shot } from './ui/layout.js';

let browser: Browser;
let system: TestSystem;
const pages: Page[] = [];

beforeAll(async () => {
  ensureUiBuilt();
  browser = await launchChromium();
  const { startSystem } = await import('./harness.js');
  system = await startSystem();
}, 900_000);

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') {
    await Promise.all(pages.map((page, i) => screenshot(page, `failed-copy-${i}`).catch(() => undefined)));
  }
  await Promise.all(pages.splice(0).map((page) => page.context().close()));
});

afterAll(async () => {
  await browser?.close();
  await system?.stop();
});

describe('Images page: copy to pool', () => {
  it('copies a ready image into another pool of the node; the copy ends Ready with the same checksum', async () => {
    const made = await system.api('POST', '/pools', {
      id: 'second',
      name: 'second',
      type: 'local',
      config: { path: join(system.dataDir, 'pools', 'second'), create: true },
      nodeIds: [system.nodeId],
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const { body } = await system.api('GET', `/images?catalogId=${system.catalog.readyId}`);
    const source = body.images[0];

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    pages.push(page);
    const problems = watchPageErrors(page);
    await page.goto(`${system.url}/images#token=${encodeURIComponent(system.token)}`);
    const table = page.getByRole('table', { name: 'Images' });
    await table.waitFor();
    const row = table.getByRole('row', { name: source.name, exact: true });
    await row.getByRole('button', { name: `Copy ${source.name} to pool` }).click();
    const form = row.getByRole('form', { name: `Copy ${source.name}` });
    await form.getByLabel('Target pool').selectOption('second');
    await shot(page, 'images-copy-form');
    await form.getByRole('button', { name: 'Copy' }).click();

    const copy = await until(
      async () =>
        (await system.api('GET', '/images?poolId=second')).body.images.find(
          (i: { labels: Record<string, string> }) => i.labels['quantix.io/copied-from'] === source.id,
        ),
      (found) => found?.phase === 'ready',
      'the copy to be ready',
      60_000,
    );
    expect(copy).toMatchObject({ checksum: source.checksum, labels: { 'quantix.io/copy-method': 'local' } });
    // Both rows on the page, both Ready.
    await until(
      () => table.getByRole('row', { name: source.name, exact: true }).count(),
      (count) => count === 2,
      'the copy on the page',
      20_000,
    );
    for (const phase of await table
      .getByRole('row', { name: source.name, exact: true })
      .locator('td.phase-cell')
      .all()) {
      expect(await textOf(phase)).toBe('Ready');
    }
    expect(problems).toEqual([]);
  });
});
