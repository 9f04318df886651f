/**
 * The shipped `./testing` entries (core, images-cloud, storage-local) are used by other people's
 * tests, outside this repository: they must not reach for this repository's scripts, nor install
 * anything. Checked on the source and on the built bundle that is published.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
// What reaching into the repository or installing looks like in code.
const FORBIDDEN = [/scripts\//, /ensure-packages/, /services\.sh/, /REPO_ROOT/, /['"`]apt-get['"`]/, /['"`]sudo['"`]/];

function files(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path).flatMap((name) => files(join(path, name)));
}

interface TestingEntry {
  name: string;
  sources: string[];
  bundles: string[];
}

function testingEntries(): TestingEntry[] {
  const entries: TestingEntry[] = [];
  for (const dir of readdirSync(join(repoRoot, 'packages'))) {
    const root = join(repoRoot, 'packages', dir);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const testing = pkg.exports?.['./testing'];
    if (!testing) continue;
    const source = join(root, testing['quantix-source']);
    const sourceDir = source.endsWith('/index.ts') ? resolve(source, '..') : source;
    entries.push({
      name: `${pkg.name}/testing`,
      sources: files(sourceDir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')),
      bundles: [join(root, testing.import.default), join(root, testing.require.default)],
    });
  }
  return entries;
}

const entries = testingEntries();

describe('shipped ./testing entries', () => {
  it('are the ones of core, images-cloud, images-iso and storage-local', () => {
    expect(entries.map((e) => e.name).sort()).toEqual([
      '@quantix/core/testing',
      '@quantix/images-cloud/testing',
      '@quantix/images-iso/testing',
      '@quantix/storage-local/testing',
    ]);
  });

  it.each(entries.map((e) => [e.name, e] as const))('%s never reaches repository scripts nor installs', (_, entry) => {
    for (const file of [...entry.sources, ...entry.bundles]) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of FORBIDDEN) expect(text, `${file} has ${pattern}`).not.toMatch(pattern);
    }
  });
});
