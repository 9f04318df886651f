import { mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { PoolTypeDefinition } from '../contracts/pool-type.js';
import { createPoolRootPolicy, type PoolRootPolicy } from '../domain/pool-roots.js';
import { ErrorCode, isQuantixError, type QuantixError } from '../errors.js';
import { checkPoolDefinition, checkPoolOnDisk, checkPoolRootOnDisk, poolTypesByName } from './pool-types.js';

// A pool type as a storage plugin defines one; the directories and links below are real.
const dirType: PoolTypeDefinition<{ path: string; create: boolean }> = {
  type: 'dir',
  configSchema: z.object({ path: z.string().min(1), create: z.boolean().default(false) }).strict(),
  roots: (config) => [config.path],
};
const types = [dirType as PoolTypeDefinition];

async function refusal(promise: Promise<unknown> | (() => unknown)): Promise<QuantixError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    if (isQuantixError(error)) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

let base: string;
let allowed: string;
let policy: PoolRootPolicy;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-roots-')));
  allowed = join(base, 'allowed');
  await mkdir(join(allowed, 'isos'), { recursive: true });
  await mkdir(join(base, 'elsewhere'), { recursive: true });
  await symlink('/etc', join(allowed, 'etc-link'));
  await symlink(join(base, 'elsewhere'), join(allowed, 'out-link'));
  await symlink(join(allowed, 'isos'), join(allowed, 'in-link'));
  await symlink(join(base, 'nothing-here'), join(allowed, 'dangling'));
  await symlink(allowed, join(base, 'allowed-link'));
  policy = createPoolRootPolicy({ allowedRoots: [allowed, join(base, 'allowed-link')] });
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('checkPoolDefinition (control plane: spelling only)', () => {
  const check = (type: string, config: unknown) =>
    checkPoolDefinition({ types, policy, pool: { id: 'p1', type, config } });

  it('returns the parsed config and its roots', () => {
    expect(check('dir', { path: join(allowed, 'isos') })).toMatchObject({
      config: { path: join(allowed, 'isos'), create: false },
      roots: [join(allowed, 'isos')],
    });
  });

  it('refuses an unknown type, a missing key and a misspelled key with INVALID_INPUT naming the field', async () => {
    const unknown = await refusal(() => check('zfs', { path: allowed }));
    expect(unknown.code).toBe(ErrorCode.INVALID_INPUT);
    expect(unknown.details.issues).toEqual([{ path: 'type', message: "unknown pool type 'zfs' (known: dir)" }]);
    const missing = await refusal(() => check('dir', {}));
    expect(missing.code).toBe(ErrorCode.INVALID_INPUT);
    expect(missing.details.issues).toMatchObject([{ path: 'config.path' }]);
    const misspelled = await refusal(() => check('dir', { path: allowed, craete: true }));
    expect(misspelled.code).toBe(ErrorCode.INVALID_INPUT);
    expect(misspelled.details.issues).toEqual([{ path: 'config.craete', message: 'is not a setting of dir pools' }]);
    expect(misspelled.message).toContain('config.craete');
  });

  it('refuses roots outside the policy with POOL_ROOT_NOT_ALLOWED', async () => {
    for (const path of ['/', '/etc', 'relative', `${allowed}/../../etc`, '/tmp']) {
      expect((await refusal(() => check('dir', { path }))).code).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    }
  });

  it('refuses two definitions of one type', async () => {
    expect((await refusal(() => poolTypesByName([dirType, dirType] as PoolTypeDefinition[]))).code).toBe(
      ErrorCode.PLUGIN_CONFLICT,
    );
  });
});

describe('checkPoolRootOnDisk (node: symbolic links followed)', () => {
  it('allows real directories, missing ones below them, and links that stay inside the allowed roots', async () => {
    expect(await checkPoolRootOnDisk(join(allowed, 'isos'), policy)).toBe(join(allowed, 'isos'));
    expect(await checkPoolRootOnDisk(join(allowed, 'new', 'pool'), policy)).toBe(join(allowed, 'new', 'pool'));
    expect(await checkPoolRootOnDisk(join(allowed, 'in-link'), policy)).toBe(join(allowed, 'isos'));
    // An allowed root that is itself a link is judged by where it leads too.
    expect(await checkPoolRootOnDisk(join(base, 'allowed-link', 'isos'), policy)).toBe(join(allowed, 'isos'));
  });

  it('refuses a link inside an allowed root that leads to /etc, or anywhere outside, also for paths below it', async () => {
    for (const path of [join(allowed, 'etc-link'), join(allowed, 'etc-link', 'ssl'), join(allowed, 'out-link', 'x')]) {
      const error = await refusal(checkPoolRootOnDisk(path, policy));
      expect(error.code).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
      expect(error.message).toContain('which resolves to');
      expect(error.details.realPath).not.toBe(path);
    }
    const etc = await refusal(checkPoolRootOnDisk(join(allowed, 'etc-link'), policy));
    expect(etc.message).toContain('is the system directory /etc');
  });

  it('refuses a root through a dangling link: where it will lead cannot be told', async () => {
    const error = await refusal(checkPoolRootOnDisk(join(allowed, 'dangling'), policy));
    expect(error.code).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    expect(error.details.reason).toBe('unresolvable');
  });

  it('checks every root of a pool definition', async () => {
    await expect(
      checkPoolOnDisk({ types, policy, pool: { id: 'p', type: 'dir', config: { path: join(allowed, 'etc-link') } } }),
    ).rejects.toMatchObject({ code: ErrorCode.POOL_ROOT_NOT_ALLOWED });
    await expect(
      checkPoolOnDisk({ types, policy, pool: { id: 'p', type: 'dir', config: { path: join(allowed, 'isos') } } }),
    ).resolves.toMatchObject({ roots: [join(allowed, 'isos')] });
  });
});
