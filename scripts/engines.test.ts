/**
 * `npm ci` prints an EBADENGINE warning when a locked package wants a Node the machine does not
 * have. The project's own `engines.node` is a promise: every locked package must accept every
 * Node version it admits, or the range (or the pin) has to change.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const supported = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } })
  .engines.node;
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: unknown }>;
};

describe('supported Node versions', () => {
  it('include the Node running the tests', () => {
    expect(semver.satisfies(process.version, supported)).toBe(true);
  });

  it('are accepted by every locked package, so npm ci prints no EBADENGINE', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && typeof (entry.engines as { node?: unknown })?.node === 'string')
      .filter(([, entry]) => !semver.subset(supported, (entry.engines as { node: string }).node))
      .map(
        ([path, entry]) =>
          `${path.replace(/^.*node_modules\//, '')}@${entry.version} wants node ${(entry.engines as { node: string }).node}`,
      );
    expect(refusing).toEqual([]);
  });
});
