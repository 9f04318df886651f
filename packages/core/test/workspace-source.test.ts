/**
 * Under vitest every workspace package is loaded from its TypeScript source through the
 * `quantix-source` export condition (vitest.config.ts), so a change in core reaches every other
 * package's tests without a build. Plain Node, as a user of the published package runs it, still
 * gets `dist`.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '..', '..', '..');

interface Entry {
  specifier: string;
  source: string;
  dist: string;
  /** The condition Node and vite try first. */
  firstCondition: string;
}

/** Every export of every workspace package: its name, the source file and the built ESM file. */
function workspaceEntries(): Entry[] {
  const entries: Entry[] = [];
  for (const group of ['packages', 'examples']) {
    for (const dir of readdirSync(join(repoRoot, group))) {
      const root = join(repoRoot, group, dir);
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
        name: string;
        exports: Record<string, string | { 'quantix-source'?: string; import?: { default: string }; default?: string }>;
      };
      for (const [sub, target] of Object.entries(pkg.exports)) {
        if (typeof target === 'string') continue;
        const source = target['quantix-source'];
        const dist = target.import?.default ?? target.default;
        if (!source || !dist) throw new Error(`${pkg.name} ${sub}: no quantix-source or dist entry`);
        entries.push({
          specifier: sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`,
          source: join(root, source),
          dist: join(root, dist),
          firstCondition: Object.keys(target)[0] as string,
        });
      }
    }
  }
  return entries;
}

const entries = workspaceEntries();
const core = entries.find((e) => e.specifier === '@quantix/core') as Entry;

describe('workspace packages under vitest', () => {
  it('every package export lists its source first', () => {
    expect(entries.map((e) => e.specifier)).toEqual(
      expect.arrayContaining([
        '@quantix/core',
        '@quantix/core/testing',
        '@quantix/node-runtime',
        '@quantix/storage-nfs',
      ]),
    );
    for (const entry of entries) {
      expect(entry.firstCondition, entry.specifier).toBe('quantix-source');
      expect(entry.source, entry.specifier).toMatch(/\/src\/.+\.ts$/);
    }
  });

  it('import("@quantix/core") is packages/core/src, not dist', async () => {
    const byName = await import('@quantix/core');
    const fromSource = await import(/* @vite-ignore */ core.source);
    const fromDist = await import(/* @vite-ignore */ pathToFileURL(core.dist).href);
    expect(byName.QuantixError).toBe(fromSource.QuantixError);
    expect(byName.QuantixError).not.toBe(fromDist.QuantixError);
  });

  it.each(entries.map((e) => [e.specifier, e] as const))('%s is loaded from its source', async (_, entry) => {
    const byName = await import(/* @vite-ignore */ entry.specifier);
    const fromSource = await import(/* @vite-ignore */ entry.source);
    expect(byName).toBe(fromSource);
  });

  it('plain Node still resolves @quantix/core to dist', async () => {
    const { stdout } = await run(process.execPath, [
      '--input-type=module',
      '-e',
      "process.stdout.write(import.meta.resolve('@quantix/core'))",
    ]);
    expect(stdout).toBe(pathToFileURL(core.dist).href);
  });
});
