/**
 * The web UI follows the control plane's live events instead of polling: in headless Chromium
 * (Debian's package, driven by playwright-core) against a real control plane on PostgreSQL with
 * a node scripted on cue (test/ui/scripted-system.ts: its downloads report progress in ten
 * steps), the Images page shows a download's progress moving while the page asks for no list,
 * and the Nodes page shows a node dropping off and coming back without a reload. Every request
 * the page makes is counted in the browser.
 */
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot, watchPageErrors } from './ui/browser.js';
import { ensureUiBuilt, until } from './ui/helpers.js';
import { type ScriptedSystem, startScriptedSystem } from './ui/scripted-system.js';

/** GETs of a whole list (images, nodes, pools, VMs): what polling would keep asking for. */
const LIST_PATHS = new Set(['/api/v1/images', '/api/v1/nodes', '/api/v1/pools', '/api/v1/vms']);

describe('web UI: live events instead of polling', () => {
  let browser: Browser;
  let system: ScriptedSystem;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  const requests: { at: number; method: string; path: string; type: string }[] = [];
  const listRequestsSince = (since: number) =>
    requests.filter((r) => r.at >= since && r.method === 'GET' && LIST_PATHS.has(r.path));

  beforeAll(async () => {
    ensureUiBuilt();
    browser = await launchChromium();
    // Ten progress reports 700 ms apart: a download moves for about 7 s.
    system = await startScriptedSystem({ stepMs: 700 });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    problems = watchPageErrors(page);
    page.on('request', (request: Request) => {
      const url = new URL(request.url());
      requests.push({ at: Date.now(), method: request.method(), path: url.pathname, type: request.resourceType() });
    });
  }, 300_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await system?.stop();
  });

  it('moves a download’s progress on the Images page from events, with no list requests meanwhile', async () => {
    await page.goto(`${system.url}/images#token=${encodeURIComponent(system.token)}`);
    await page.getByRole('row', { name: 'Tiny ready image', exact: true }).waitFor();
    // The page's one stream is open (its ticket asked for, the stream requested).
    await until(
      async () => requests.filter((r) => r.path === '/api/v1/events').length,
      (n) => n === 1,
      'the event stream to be opened',
    );

    // A download started elsewhere (the CLI, say): its first phase event brings it onto the page.
    const started = await fetch(`${system.url}/api/v1/images/download`, {
      method: 'POST',
      headers: { authorization: `Bearer ${system.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ catalogId: system.catalog.notDownloadedId, poolId: system.poolId }),
    });
    expect(started.status).toBe(202);
    const bar = page.getByRole('progressbar', { name: 'Download of Tiny later image' });
    const percentShown = async () => Number((await bar.getAttribute('aria-valuenow', { timeout: 1000 })) ?? -1);
    const first = await until(percentShown, (p) => p > 0 && p < 60, 'the download’s first progress');
    const since = Date.now();
    const seen = new Set<number>([first]);
    await until(
      async () => {
        seen.add(await percentShown().catch(() => -1));
        return seen;
      },
      (values) => [...values].filter((p) => p > first && p < 100).length >= 2,
      'the progress to move twice more',
    );
    await screenshot(page, 'live-images-progress');
    expect(listRequestsSince(since)).toEqual([]);

    // Ready: the page fetches that one image again (its size and path), still no list.
    await until(
      async () =>
        (await page.getByRole('row', { name: 'Tiny later image', exact: true }).allInnerTexts())
          .join(' ')
          .replace(/\s+/g, ' '),
      (text) => text.includes('Ready') && text.includes('/var/lib/quantix/local-images/images/'),
      'the image to be shown ready, with its path',
      20_000,
    );
    expect(listRequestsSince(since)).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('shows a node dropping off and coming back on the Nodes page without a reload, on the same stream', async () => {
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Nodes' }).click();
    const card = page.getByRole('article', { name: 'hv-ui' });
    await card.waitFor();
    const cardText = async () => (await card.allInnerTexts()).join(' ').replace(/\s+/g, ' ');
    await until(cardText, (t) => t.includes('Connected'), 'the node shown connected');
    const loads = page.url();
    const documentsBefore = requests.filter((r) => r.type === 'document').length;

    await system.disconnectNode();
    await until(cardText, (t) => t.includes('Disconnected'), 'the node shown disconnected', 10_000);
    await system.reconnectNode();
    await until(cardText, (t) => /\bConnected\b/.test(t) && !t.includes('Disconnected'), 'the node back', 10_000);

    // The same page, never reloaded, and still the tab's one stream.
    expect(page.url()).toBe(loads);
    expect(requests.filter((r) => r.type === 'document').length).toBe(documentsBefore);
    expect(requests.filter((r) => r.path === '/api/v1/events')).toHaveLength(1);
    expect(problems).toEqual([]);
  });
});
