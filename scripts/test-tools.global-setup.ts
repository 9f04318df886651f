/**
 * vitest global setup: before any test, checks that every package of scripts/test-packages.txt
 * is installed and that the de_DE.UTF-8 locale exists, and fails the whole run with one message
 * that names what is missing and how to get it. It installs nothing: scripts/test-all.sh does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findOnPath, installedLocales } from '../packages/core/src/testing/system.js';

const LIST = join(import.meta.dirname, 'test-packages.txt');
const LOCALE = 'de_DE.utf8';

export default function checkTestMachine(): void {
  const missing: { pkg: string; what: string[] }[] = [];
  for (const line of readFileSync(LIST, 'utf8').split('\n')) {
    const [pkg, ...evidence] = line.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (!pkg) continue;
    const absent = evidence.filter((item) => (item.startsWith('/') ? !existsSync(item) : findOnPath(item) === null));
    if (absent.length > 0) missing.push({ pkg, what: absent });
  }
  const problems = missing.map(({ pkg, what }) => `  ${pkg}: ${what.join(', ')} not found`);
  const steps: string[] = [];
  if (missing.length > 0) {
    steps.push(`apt-get install -y --no-install-recommends ${missing.map((m) => m.pkg).join(' ')}`);
  }
  if (!installedLocales().includes(LOCALE)) {
    problems.push('  locale de_DE.UTF-8: not generated');
    steps.push('localedef -i de_DE -f UTF-8 de_DE.UTF-8');
  }
  if (problems.length === 0) return;
  throw new Error(
    [
      'This machine lacks what the tests use (tests never install it and never skip):',
      ...problems,
      'Prepare it with scripts/test-all.sh, or as root:',
      ...steps.map((step) => `  ${step}`),
    ].join('\n'),
  );
}
