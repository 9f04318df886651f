/**
 * Commands run in the C locale whatever the caller's own locale is: their output is parsed, and
 * a German weekday or error message would not read as the English one. Real programs (coreutils,
 * whose German translation is installed) under a real de_DE.UTF-8 locale.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { requireLocale } from '../testing/system.js';
import { LocalCommandRunner } from './local.js';

const run = promisify(execFile);
const GERMAN = 'de_DE.UTF-8';

describe('LocalCommandRunner and the locale', () => {
  beforeAll(() => requireLocale(GERMAN));
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('the same programs speak German in a German environment (so the check below can fail)', async () => {
    const env = { ...process.env, LANG: GERMAN, LC_ALL: GERMAN };
    expect((await run('date', ['-u', '-d', '@0', '+%A %B'], { env })).stdout).toBe('Donnerstag Januar\n');
    const df = await run('df', ['/no/such/dir'], { env }).catch((e: { stderr: string }) => e);
    expect((df as { stderr: string }).stderr).toMatch(/nicht gefunden/);
  });

  it('runs commands in the C locale when this process has LANG and LC_ALL set to German', async () => {
    vi.stubEnv('LANG', GERMAN);
    vi.stubEnv('LC_ALL', GERMAN);
    vi.stubEnv('LC_MESSAGES', GERMAN);
    const runner = new LocalCommandRunner();
    expect((await runner.run({ argv: ['date', '-u', '-d', '@0', '+%A %B'] })).stdout).toBe('Thursday January\n');
    const df = await runner.run({ argv: ['df', '/no/such/dir'], allowNonZeroExit: true });
    expect(df.stderr).toBe('df: /no/such/dir: No such file or directory\n');
    const env = await runner.run({ argv: ['printenv', 'LC_ALL', 'LANG'] });
    expect(env.stdout).toBe('C\nC\n');
  });

  it('keeps a locale the caller asks for explicitly', async () => {
    const runner = new LocalCommandRunner();
    const result = await runner.run({ argv: ['date', '-u', '-d', '@0', '+%A'], env: { LC_ALL: GERMAN } });
    expect(result.stdout).toBe('Donnerstag\n');
  });
});
