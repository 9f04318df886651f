/**
 * Every benchmark in bench/ runs here in quick mode, so none rots. This checks that each one
 * runs to the end and prints its comparison with its peer; it does not judge the timings
 * (`npm run bench` is the full run).
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const benches = readdirSync(import.meta.dirname).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));

describe('benchmarks (quick mode)', () => {
  it('are present', () => {
    expect(benches).toContain('repository.ts');
    expect(benches).toContain('replicas.ts');
  });

  it.each(benches)(
    '%s runs and prints its ratio against its peer',
    async (file) => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', join(import.meta.dirname, file)], {
        env: { ...process.env, QUANTIX_BENCH_QUICK: '1', QUANTIX_LOG_LEVEL: 'silent' },
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      console.log(stdout);
      expect(stdout).toMatch(/\d+(\.\d+)?x/);
    },
    300_000,
  );
});
