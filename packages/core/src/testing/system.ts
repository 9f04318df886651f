/**
 * Checks that the machine has what a test drives: a program, a locale. They only check and
 * never install: preparing the machine is the CI entry's job, before any test starts. A missing
 * one fails the test with the Debian package and the command that provides it; it never skips.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** A program a test runs, and the Debian package that ships it. */
export interface RequiredTool {
  program: string;
  debianPackage: string;
}

/** The full path of `program` on PATH (as a shell's `command -v` finds it), or null. */
export function findOnPath(program: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/** Every tool that is not on PATH, in the order given. */
export function missingTools(tools: readonly RequiredTool[]): RequiredTool[] {
  return tools.filter((tool) => findOnPath(tool.program) === null);
}

/** The message for missing tools: what is missing, which packages, the one command that installs them. */
export function missingToolsMessage(missing: readonly RequiredTool[]): string {
  const packages = [...new Set(missing.map((t) => t.debianPackage))];
  const programs = missing.map((t) => `${t.program} (Debian package ${t.debianPackage})`).join(', ');
  return `This test needs programs that are not installed: ${programs}. Install them with: apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

/** Throws, naming package and install command, unless every tool is on PATH. */
export function requireTools(...tools: RequiredTool[]): void {
  const missing = missingTools(tools);
  if (missing.length > 0) throw new Error(missingToolsMessage(missing));
}

/** The locales `locale -a` lists, normalised as glibc does (`de_DE.UTF-8` → `de_DE.utf8`). */
export function installedLocales(): string[] {
  requireTools({ program: 'locale', debianPackage: 'libc-bin' });
  return execFileSync('locale', ['-a'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(normalizeLocale);
}

function normalizeLocale(name: string): string {
  const [lang, codeset] = name.split('.', 2);
  return codeset ? `${lang}.${codeset.toLowerCase().replaceAll('-', '')}` : name;
}

/**
 * Throws unless `name` (e.g. `de_DE.UTF-8`) is an installed locale, naming the command that
 * generates it. Tests that prove output does not depend on the caller's locale need one that
 * is not English.
 */
export function requireLocale(name: string): void {
  if (installedLocales().includes(normalizeLocale(name))) return;
  const [lang, codeset] = name.split('.', 2);
  throw new Error(
    `This test needs the locale ${name}, which is not installed. Generate it as root with: ` +
      `localedef -i ${lang} -f ${codeset ?? 'UTF-8'} ${name} (the locale sources come with the Debian package locales)`,
  );
}
