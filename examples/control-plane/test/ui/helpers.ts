import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator } from 'playwright-core';

const PACKAGE_DIR = fileURLToPath(new URL('../../', import.meta.url));

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

/**
 * The control plane serves dist/ui (what `npm run build` makes). Built here when it is
 * missing or older than the UI sources, so a test never looks at a stale page.
 */
export function ensureUiBuilt(): void {
  const built = join(PACKAGE_DIR, 'dist/ui/index.html');
  const sources = newestMtime(join(PACKAGE_DIR, 'ui'));
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  const vite = join(dirname(createRequire(import.meta.url).resolve('vite/package.json')), 'bin/vite.js');
  execFileSync(process.execPath, [vite, 'build', 'ui', '--logLevel', 'warn'], {
    cwd: PACKAGE_DIR,
    // vitest sets NODE_ENV=test, which would give React's development build.
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: 'inherit',
  });
}

/** What a screen reader announces as the control's description: its aria-describedby texts. */
export async function description(locator: Locator): Promise<string> {
  return locator.evaluate((element) =>
    (element.getAttribute('aria-describedby') ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map((id) => document.getElementById(id)?.textContent ?? '')
      .join(' ')
      .replace(/\s+/g, ' ')
      .trim(),
  );
}

/** Polls `probe` until `ok` holds; the last value is in the error when it never does. */
export async function until<T>(
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let failure: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      failure = undefined;
      if (ok(last)) return last;
    } catch (error) {
      failure = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${failure ? String(failure) : JSON.stringify(last)}`,
  );
}

/** What a person reads in an element, whitespace folded. */
export const textOf = async (locator: Locator) => (await locator.allInnerTexts()).join(' ').replace(/\s+/g, ' ').trim();
