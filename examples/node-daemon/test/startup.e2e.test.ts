/**
 * What the `quantix-node` command loads: a node daemon has no database, so neither knex nor a
 * database driver (they made up ~50 ms of its start: `--help` 0.46 s instead of 0.51 s). The process records every
 * module it resolves, with the control plane's CLI startup test's recorder.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const RECORDER = join(import.meta.dirname, '../../control-plane/test/__fixtures__/register-record-loads.mjs');
const DAEMON = join(import.meta.dirname, '../bin/quantix-node.js');
const dir = mkdtempSync(join(tmpdir(), 'quantix-node-startup-'));

describe('the quantix-node command', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads no database library', () => {
    const log = join(dir, 'loads.log');
    execFileSync(process.execPath, ['--import', RECORDER, DAEMON, '--help'], {
      env: { ...process.env, QUANTIX_LOAD_LOG: log },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    // The recording works: the daemon's own parts are there (its options, the protocol's schemas).
    expect(loaded.some((url) => url.includes('/node_modules/commander/'))).toBe(true);
    expect(loaded.some((url) => url.includes('/node_modules/zod/'))).toBe(true);
    expect(loaded.filter((url) => /\/node_modules\/(knex|pg|pg-boss|@electric-sql|knex-pglite)\//.test(url))).toEqual(
      [],
    );
  });
});
