/** Something outside every pool that no request may reach. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A directory outside every pool, with a real ISO in it: the fuzzer aims at it by name. */
export function makeCanary(root: string): { dir: string; digest: () => string } {
  const dir = join(root, 'canary');
  mkdirSync(join(dir, 'content'), { recursive: true });
  writeFileSync(join(dir, 'content', 'secret.txt'), 'not yours\n');
  execFileSync('xorriso', ['-as', 'mkisofs', '-V', 'CANARY', '-o', join(dir, 'canary.iso'), join(dir, 'content')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const digest = () => {
    const hash = createHash('sha256');
    const walk = (path: string) => {
      for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const full = join(path, entry.name);
        hash.update(full);
        if (entry.isDirectory()) walk(full);
        else hash.update(readFileSync(full));
      }
    };
    walk(dir);
    return hash.digest('hex');
  };
  return { dir, digest };
}
