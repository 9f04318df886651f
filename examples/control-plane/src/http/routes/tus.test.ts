/**
 * Which replica has a tus upload: the upload id names the replica that created it, so another
 * replica (without the file) answers UPLOAD_ON_OTHER_REPLICA naming it; with the file in a
 * shared staging directory it serves it. Real files in a temporary directory; the UploadService
 * is not reached by this check, so a bare stand-in with its size limit is given (said here).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UploadService } from '@quantix/control-plane';
import { ErrorCode } from '@quantix/core';
import { errorCodeOf } from '@quantix/core/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TusUploads } from './tus.js';

describe('TusUploads.checkHere', () => {
  let directory: string;
  const replicaA = { id: 'cp-a', url: 'http://10.1.0.1:8080' };
  const tusOn = (id: string) =>
    new TusUploads({
      uploads: { maxBytes: 1024 } as UploadService,
      directory,
      path: '/api/v1/uploads/tus',
      logger: pino({ level: 'silent' }),
      replica: { id, urlOf: async (other) => (other === replicaA.id ? replicaA.url : undefined) },
    });
  const idOnA = `${Buffer.from(replicaA.id).toString('base64url')}.0b9a3c0e-1f5e-4b8e-9d6f-2a7c1e4b5d60`;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'quantix-tus-check-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('names the live replica that holds an upload this one does not have', async () => {
    expect(await errorCodeOf(tusOn('cp-b').checkHere(idOnA))).toBe(ErrorCode.UPLOAD_ON_OTHER_REPLICA);
    await expect(tusOn('cp-b').checkHere(idOnA)).rejects.toMatchObject({
      message: expect.stringContaining('cp-a'),
      details: { replicaId: 'cp-a', url: replicaA.url },
    });
  });

  it('lets the request through on the replica that made it, or for a replica no longer alive (tus answers 404)', async () => {
    await expect(tusOn('cp-a').checkHere(idOnA)).resolves.toBeUndefined();
    const idOnGone = `${Buffer.from('cp-gone').toString('base64url')}.0b9a3c0e-1f5e-4b8e-9d6f-2a7c1e4b5d60`;
    await expect(tusOn('cp-b').checkHere(idOnGone)).resolves.toBeUndefined();
  });

  it('serves an upload whose file is here (a staging directory the replicas share)', async () => {
    await writeFile(join(directory, idOnA), 'partial bytes');
    await expect(tusOn('cp-b').checkHere(idOnA)).resolves.toBeUndefined();
  });
});
