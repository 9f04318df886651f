/**
 * What the built `quantix` command loads to run a command against the API: the client, the
 * argument parser, the upload client — not the database drivers, the job queue or core's whole
 * entry (its schemas and repositories), which made every command take 0.3 s more to start. The
 * process records every module it resolves (test/__fixtures__/record-loads.mjs).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { QUANTIX } from './processes.js';

const RECORDER = join(import.meta.dirname, '__fixtures__', 'register-record-loads.mjs');
const dir = mkdtempSync(join(tmpdir(), 'quantix-cli-startup-'));

/** The modules `quantix <args>` resolved, as file paths or node: names. */
function modulesLoadedBy(args: string[]): string[] {
  const log = join(dir, `${args.join('-')}.log`);
  execFileSync(process.execPath, ['--import', RECORDER, QUANTIX, ...args], {
    env: { ...process.env, QUANTIX_LOAD_LOG: log },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

describe('the quantix command starts light', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([[['--help']], [['images', 'upload', '--help']], [['vms', 'create', '--help']]])(
    'quantix %j loads no database driver, job queue or core entry',
    (args) => {
      const loaded = modulesLoadedBy(args);
      // The recording works: the command's own parts are there.
      expect(loaded.some((url) => url.includes('/node_modules/commander/'))).toBe(true);
      expect(loaded.some((url) => url.includes('/node_modules/tus-js-client/'))).toBe(true);
      const heavy = loaded.filter(
        (url) =>
          /\/node_modules\/(knex|pg|pg-boss|@electric-sql|zod|fastify)\//.test(url) ||
          /\/packages\/(core|control-plane)\/(dist|src)\/index\.(js|ts)$/.test(url),
      );
      expect(heavy).toEqual([]);
    },
  );
});
