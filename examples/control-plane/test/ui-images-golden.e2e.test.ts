/**
 * The Images page's disk-image import and golden images in headless Chromium, against a real
 * system (harness.ts: control plane, real node daemon, local pool, a real HTTP mirror). The
 * disk images are made with qemu-img here; the mirror's SHA256SUMS is changed to publish a new
 * upstream build. Pictures of each new form and dialog land in test-results/screenshots/.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createImage, makeQcow2, sha256Sums } from '@quantix/images-cloud/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestSystem } from './harness.js';
import { launchChromium, screenshot, watchPageErrors } from './ui/browser.js';
import { ensureUiBuilt, textOf, until } from './ui/helpers.js';
import { shot } from './ui/layout.js';

const run = promisify(execFile);
const VIEWPORT = { width: 1280, height: 800 };
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let browser: Browser;
let system: TestSystem;
let work: string;
const pages: Page[] = [];

beforeAll(async () => {
  ensureUiBuilt();
  browser = await launchChromium();
  const { startSystem } = await import('./harness.js');
  // Paced so the import's progress bar is on screen long enough to be seen.
  system = await startSystem({ mirrorBytesPerSecond: 256 * 1024 });
  work = await mkdtemp(join(tmpdir(), 'quantix-ui-import-'));
}, 900_000);

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') {
    const slug = context.task.name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60);
    await Promise.all(pages.map((page, i) => screenshot(page, `failed-${slug}-${i}`).catch(() => undefined)));
  }
  await Promise.all(pages.splice(0).map((page) => page.context().close()));
});

afterAll(async () => {
  await browser?.close();
  await system?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function openImages(): Promise<{ page: Page; problems: string[]; notFound: string[]; read: string[] }> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  pages.push(page);
  const problems = watchPageErrors(page);
  // What the page asked for that was not there (the browser logs each as an error in its console).
  const notFound: string[] = [];
  // Every API path it read, in order.
  const read: string[] = [];
  page.on('response', (response) => {
    const { pathname } = new URL(response.url());
    if (response.status() === 404) notFound.push(`${response.request().method()} ${pathname}`);
    if (pathname.startsWith('/api/')) read.push(pathname);
  });
  await page.goto(`${system.url}/images#token=${encodeURIComponent(system.token)}`);
  await page.getByRole('table', { name: 'Images' }).waitFor();
  return { page, problems, notFound, read };
}

/** Fills the import form and submits it; the name the page says it is importing. */
async function importThroughForm(page: Page, url: string, checksum: string, claimed: string): Promise<string> {
  const form = page.getByRole('form', { name: 'Import disk image' });
  await form.getByLabel('Image URL').fill(url);
  await form.getByLabel('SHA-256 of the file').fill(checksum);
  await form.getByLabel('The file is').selectOption(claimed);
  await form.getByLabel('Convert to').selectOption('qcow2');
  await form.getByRole('button', { name: 'Import' }).click();
  const status = form.getByRole('status');
  await status.waitFor();
  const name = /^Importing (.+) into /.exec(await textOf(status))?.[1];
  expect(name, 'the started import names its image').toBeTruthy();
  return name as string;
}

describe('Images page: import a disk image from a URL', () => {
  it('imports a VMDK through the form: a progress bar while it runs, then Ready as qcow2', async () => {
    const qcow2 = await makeQcow2(work, 'appliance.qcow2', 3);
    await run('qemu-img', ['convert', '-q', '-O', 'vmdk', join(work, 'appliance.qcow2'), join(work, 'appliance.vmdk')]);
    const vmdk = await readFile(join(work, 'appliance.vmdk'));
    expect(vmdk.length).toBeGreaterThan(qcow2.length / 4);
    system.mirror.setFile('/import/appliance.vmdk', vmdk);

    const { page, problems } = await openImages();
    const form = page.getByRole('form', { name: 'Import disk image' });
    await form.scrollIntoViewIfNeeded();
    await expect(textOf(form)).resolves.toContain('the node verifies the download against it');
    await shot(page, 'images-import-form');

    const name = await importThroughForm(page, `${system.mirror.url}/import/appliance.vmdk`, sha256(vmdk), 'vmdk');
    const row = page.getByRole('table', { name: 'Images' }).getByRole('row', { name, exact: true });
    // The mirror sends 256 KiB/s: the bar is there for seconds.
    await row.getByRole('progressbar').waitFor({ timeout: 30_000 });
    await row.scrollIntoViewIfNeeded();
    await shot(page, 'images-import-progress');
    await until(
      () => textOf(row.locator('td.phase-cell')),
      (text) => /^Ready/.test(text) || /^Error/.test(text),
      'the imported row to end',
      120_000,
    );
    expect(await textOf(row.locator('td.phase-cell'))).toBe('Ready');
    expect(await row.getByRole('progressbar').count()).toBe(0);
    const image = (await system.api('GET', '/images?text=appliance')).body.images.find(
      (i: { name: string }) => i.name === name,
    );
    expect(image).toMatchObject({
      phase: 'ready',
      format: 'qcow2',
      labels: { 'quantix.io/import-source-format': 'vmdk' },
    });
    expect(problems).toEqual([]);
  });

  it('cancels an import from its row, and retries it there: it goes on from what arrived and ends Ready', async () => {
    const qcow2 = await makeQcow2(work, 'mistake.qcow2', 4);
    system.mirror.setFile('/import/mistake.qcow2', qcow2);

    const { page, problems } = await openImages();
    const name = await importThroughForm(page, `${system.mirror.url}/import/mistake.qcow2`, sha256(qcow2), 'qcow2');
    const row = page.getByRole('table', { name: 'Images' }).getByRole('row', { name, exact: true });
    // The mirror sends 256 KiB/s: the import runs for seconds.
    await row.getByRole('progressbar').waitFor({ timeout: 30_000 });
    await row.getByRole('button', { name: `Cancel download of ${name}` }).click();
    const phase = row.locator('td.phase-cell');
    const cancelled = await until(
      () => textOf(phase),
      (text) => /^(Error|Ready)/.test(text),
      'the row to show the import cancelled',
      30_000,
    );
    expect(cancelled).toMatch(/^Error/);
    expect(cancelled).toContain('(DOWNLOAD_CANCELLED)');
    expect(await row.getByRole('button', { name: `Cancel download of ${name}` }).count()).toBe(0);
    await row.scrollIntoViewIfNeeded();
    await shot(page, 'images-import-cancelled');

    await row.getByRole('button', { name: `Retry download of ${name}` }).click();
    await until(
      () => textOf(phase),
      (text) => /^Ready/.test(text),
      'the retried import to be ready',
      120_000,
    );
    // It went on from what arrived: the mirror was asked for the rest.
    expect(system.mirror.requestsFor('/import/mistake.qcow2').at(-1)).toMatchObject({ status: 206 });
    expect(problems).toEqual([]);
  });

  it('shows why an import was refused: a raw file said to be a VMDK ends in IMAGE_FORMAT_MISMATCH on its row', async () => {
    await createImage({ path: join(work, 'not-really.vmdk'), format: 'raw', size: '1M' });
    const raw = await readFile(join(work, 'not-really.vmdk'));
    system.mirror.setFile('/import/not-really.vmdk', raw);

    const { page, problems } = await openImages();
    const name = await importThroughForm(page, `${system.mirror.url}/import/not-really.vmdk`, sha256(raw), 'vmdk');
    const phase = page
      .getByRole('table', { name: 'Images' })
      .getByRole('row', { name, exact: true })
      .locator('td.phase-cell');
    const shown = await until(
      () => textOf(phase),
      (text) => /^(Error|Ready)/.test(text),
      'the refusal',
      120_000,
    );
    expect(shown).toMatch(/^Error/);
    expect(shown).toContain('(IMAGE_FORMAT_MISMATCH)');
    const { body } = await system.api('GET', '/images?phase=error');
    const refused = body.images.find((i: { name: string }) => i.name === name);
    // What the row says is what the API says.
    expect(shown).toContain(refused.error.message);

    // A refusal by the API itself (a checksum that is not hex) is shown in the form, with its code.
    const form = page.getByRole('form', { name: 'Import disk image' });
    await form.getByLabel('SHA-256 of the file').evaluate((input) => input.removeAttribute('pattern'));
    await form.getByLabel('Image URL').fill(`${system.mirror.url}/import/not-really.vmdk`);
    await form.getByLabel('SHA-256 of the file').fill('z'.repeat(64));
    await form.getByRole('button', { name: 'Import' }).click();
    const shaField = form.getByLabel('SHA-256 of the file');
    await until(
      () => shaField.getAttribute('aria-invalid'),
      (v) => v === 'true',
      'the SHA-256 field marked invalid',
    );
    expect(await textOf(form.locator('.field-invalid .field-error'))).not.toBe('');
    await form.scrollIntoViewIfNeeded();
    await shot(page, 'images-import-refused');
    expect(problems).toEqual([]);
  });
});

describe('Images page: golden images that follow upstream', () => {
  it('follows the ready catalog image, checks now (unchanged, then a new build as r2), lists revisions, unfollows', async () => {
    const { entries } = (await system.api('GET', '/catalog')).body as { entries: { id: string; name: string }[] };
    const readyName = entries.find((e) => e.id === system.catalog.readyId)?.name ?? '';
    const { page, problems, notFound, read } = await openImages();
    const table = page.getByRole('table', { name: 'Images' });
    const row = table.getByRole('row', { name: readyName, exact: true });
    await row.waitFor();
    await until(
      async () => read.filter((path) => path.endsWith('/follow') || path.endsWith('/golden-images')),
      (reads) => reads.length > 0,
      'the page to read what follows upstream',
    );
    expect(await textOf(row.locator('th'))).not.toContain('Follows upstream');
    // Whether each catalog image follows upstream is one read of every follow: an image that does
    // not is not asked about one by one (a 404 each, an error in the browser's console each).
    expect(notFound).toEqual([]);

    await row.getByRole('button', { name: `Upstream of ${readyName}` }).click();
    const dialog = page.getByRole('dialog', { name: `Upstream of ${readyName}` });
    await dialog.waitFor();
    expect(await textOf(dialog)).toContain('Not followed');
    await dialog.getByLabel('Check schedule (cron, UTC)').fill('not a schedule');
    await dialog.getByRole('button', { name: 'Follow', exact: true }).click();
    // The API's refusal of a bad cron is shown in the dialog, beside the field or as an alert.
    await dialog.locator('.field-error, [role="alert"]').first().waitFor();
    await dialog.getByLabel('Check schedule (cron, UTC)').fill('0 3 * * *');
    await dialog.getByLabel('Revisions to keep').fill('2');
    await shot(page, 'golden-follow-dialog');
    await dialog.getByRole('button', { name: 'Follow', exact: true }).click();

    await until(
      () => textOf(dialog),
      (text) => text.includes('Next check'),
      'the dialog to show the follow',
    );
    expect(await textOf(dialog)).toContain('not checked yet');
    expect(await textOf(row.locator('th'))).toContain('Follows upstream');

    await dialog.getByRole('button', { name: 'Check now' }).click();
    await until(
      () => textOf(dialog.getByRole('status')),
      (text) => text.startsWith('Check: Unchanged'),
      'an unchanged check',
      30_000,
    );
    await until(
      () => textOf(dialog),
      (text) => /Last check Unchanged/.test(text),
      'the last check shown',
    );

    // Upstream publishes a new build: the next check downloads it as revision 2.
    const newer = await makeQcow2(work, 'tiny-ready-2.qcow2', 2);
    const later = await readFile(join(system.dataDir, 'tiny-later.qcow2'));
    system.mirror.setFile('/images/tiny-ready.qcow2', newer);
    system.mirror.setFile('/images/SHA256SUMS', sha256Sums({ 'tiny-ready.qcow2': newer, 'tiny-later.qcow2': later }));
    await dialog.getByRole('button', { name: 'Check now' }).click();
    await until(
      () => textOf(dialog.getByRole('status')),
      (text) => text.startsWith('Check: New revision'),
      'a check that finds the new build',
      30_000,
    );
    const revisions = dialog.getByRole('list', { name: `Revisions of ${readyName}` });
    await until(
      () => revisions.getByRole('listitem').allInnerTexts(),
      (items) => items.length === 2 && /^r2 /.test(items[0] ?? '') && /^r1 /.test(items[1] ?? ''),
      'both revisions, newest first',
      60_000,
    );
    await shot(page, 'golden-upstream-dialog');
    await dialog.getByRole('button', { name: 'Close' }).click();

    // The new revision is a row of its own, badged as following upstream once it is ready.
    const revisionRow = table.getByRole('row', { name: `${readyName} (r2)`, exact: true });
    await until(
      () => textOf(revisionRow.locator('th, td')),
      (text) => text.includes('Follows upstream') && text.includes('Ready'),
      'the r2 row, ready and badged',
      120_000,
    );
    await shot(page, 'golden-images-badges');

    // `vms create --image <entry>` makes the VM of its newest ready revision, and says so.
    const tokenFile = join(work, 'api-token');
    await writeFile(tokenFile, system.token, { mode: 0o600 });
    const { inProcessCli } = await import('./harness.js');
    const cli = inProcessCli(() => system.url, tokenFile);
    const entry = system.catalog.readyId;
    const labelled = await system.api('GET', `/images?label=quantix.io/catalog-id=${entry}`);
    const r2 = labelled.body.images.find((i: { name: string }) => i.name === `${readyName} (r2)`)?.id;
    expect(r2).toBeTruthy();
    const made = await cli('vms', 'create', 'golden-vm', '--image', entry, '--memory', '128', '--node', system.nodeId);
    try {
      expect(made).toContain(`, from revision 2 of ${entry}, the newest ready (${r2})`);
      expect((await system.api('GET', '/vms/golden-vm')).body).toMatchObject({ bootImageId: r2 });
    } finally {
      // Not left running on the host, whatever failed.
      expect(await cli('vms', 'delete', 'golden-vm', '--yes')).toContain('deleted VM golden-vm');
    }

    await row.getByRole('button', { name: `Upstream of ${readyName}` }).click();
    await dialog.getByRole('button', { name: 'Unfollow' }).click();
    await until(
      () => textOf(dialog),
      (text) => text.includes('Not followed'),
      'the dialog to show it unfollowed',
    );
    await dialog.getByRole('button', { name: 'Close' }).click();
    await until(
      () => textOf(table.locator('th')),
      (text) => !text.includes('Follows upstream'),
      'every badge to go',
    );
    expect((await system.api('GET', `/images/${(await imageIdOf(readyName)) ?? ''}/follow`)).status).toBe(404);
    expect(problems).toEqual([]);
  });
});

describe('Images page: rescan', () => {
  it('names a file it left out, and why: a file named .iso that is not one', async () => {
    const broken = join(system.dataDir, 'pools', 'local', 'half-copied.iso');
    await writeFile(broken, 'the first bytes of something');
    try {
      const { page, problems } = await openImages();
      const rescan = page.locator('.rescan');
      await rescan.getByRole('button', { name: 'Rescan pools' }).click();
      await until(
        () => textOf(rescan.getByRole('status')),
        (text) => /^Scanned 1 pool\(s\); left out: half-copied\.iso \(.*not an ISO 9660 image/.test(text),
        'the rescan to name the file it left out',
      );
      expect(problems).toEqual([]);
    } finally {
      await rm(broken, { force: true });
    }
  });
});

async function imageIdOf(name: string): Promise<string | undefined> {
  const { body } = await system.api('GET', `/images?catalogId=${system.catalog.readyId}`);
  return body.images.find((i: { name: string }) => i.name === name)?.id;
}
