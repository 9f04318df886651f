/**
 * Runs the first ```ts block of a package's README.md as its own ES module in a plain Node
 * process (through tsx), against the built packages, as a reader who copied it would. Each
 * package's test/readme-example.test.ts uses it so the README's opening example stays true.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '..');

export async function firstTsBlock(readmePath: string): Promise<string> {
  const readme = await readFile(readmePath, 'utf8');
  const block = /^```ts\n([\s\S]*?)^```$/m.exec(readme)?.[1];
  if (block === undefined) throw new Error(`${readmePath} has no \`\`\`ts block`);
  return block;
}

/** The example's stdout; throws (with its stderr) when it exits non-zero. */
export async function runReadmeExample(packageRoot: string, timeoutMs = 120_000): Promise<string> {
  const code = await firstTsBlock(join(packageRoot, 'README.md'));
  // Under the repository's node_modules, so '@quantix/*' resolves to the workspace packages.
  const cache = join(repoRoot, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const dir = await mkdtemp(join(cache, 'readme-example-'));
  try {
    await writeFile(join(dir, 'example.mts'), code);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'example.mts'], {
      cwd: dir,
      timeout: timeoutMs,
      env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
    });
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
