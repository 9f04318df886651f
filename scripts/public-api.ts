/**
 * The public surface of one built package entry, as an embedder sees it: every name its
 * declarations export, types marked `type`, one per line and sorted. Each package's
 * test/public-api.test.ts pins this text in a checked-in file, so that adding or removing an
 * export is a deliberate change (`npx vitest run <that test> -u` rewrites the file).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Names exported by a tsup declaration file: `export { a as B, type C, D } ...;` statements. */
function declaredNames(declarations: string): string[] {
  const names: string[] = [];
  for (const match of declarations.matchAll(/^export\s+(?:type\s+)?\{([^}]*)\}/gm)) {
    for (const item of (match[1] ?? '').split(',')) {
      const name = item
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
        .pop();
      if (name) names.push(name);
    }
  }
  return names;
}

export interface PublicApi {
  /** The pinned text: `name` for a runtime value, `type name` for a type only. */
  readonly text: string;
  /** Runtime exports the declarations do not declare: should always be empty. */
  readonly undeclared: string[];
}

/** Reads `dist/<entry>.d.ts` and imports `dist/<entry>.js` of the package at packageRoot. */
export async function publicApi(packageRoot: string, entry: string): Promise<PublicApi> {
  const dist = join(packageRoot, 'dist');
  const runtime = new Set(Object.keys(await import(pathToFileURL(join(dist, `${entry}.js`)).href)));
  const declared = new Set(declaredNames(readFileSync(join(dist, `${entry}.d.ts`), 'utf8')));
  const lines = [...declared]
    .sort((a, b) => a.localeCompare(b, 'en'))
    .map((name) => (runtime.has(name) ? name : `type ${name}`));
  return { text: `${lines.join('\n')}\n`, undeclared: [...runtime].filter((name) => !declared.has(name)).sort() };
}
