/**
 * Golden images that follow upstream, over HTTP, on PGlite and PostgreSQL: a real control plane,
 * a real node daemon holding a local pool, and a real HTTP server whose qcow2 and SHA256SUMS
 * change between checks. Revisions are downloaded by the node through the one download path and
 * removed by it; the VM that holds a revision is a VM row (no hypervisor is needed to be "in use":
 * the control plane decides from the rows, as it does for image deletion).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newToken } from '@quantix/control-plane';
import { createPoolRootPolicy, createQuantix, type Quantix } from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import type { startNodeDaemon } from '@quantix/example-node-daemon';
import { createImagesCloudPlugin } from '@quantix/images-cloud';
import { type ImageServer, makeQcow2, sha256, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { buildIso } from '@quantix/images-iso/testing';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiCaller, inProcessCli, startNodeWithPool, waitFor } from '../../test/harness.js';
import { type ControlPlane, startControlPlane } from '../control-plane.js';

const API_TOKEN = newToken();
const silent = pino({ level: 'silent' });
const ENTRY_ID = 'golden-tiny';
const IMAGE = '/golden/tiny.qcow2';
const SUMS = '/golden/SHA256SUMS';
const ISO_ENTRY_ID = 'golden-installer';
const ISO = '/golden/installer.iso';
const ISO_SUMS = '/golden/ISO-SHA256SUMS';
/** What the ISO entry says a VM of it needs: no default of any kind, so a revision that lost it shows. */
const ISO_REQUIREMENTS = { minCpu: 2, minMemoryMiB: 96, minDiskGiB: 3, firmware: 'uefi' } as const;

describe.each(TEST_DATABASE_CLIENTS)('golden images that follow upstream (%s)', (client) => {
  let root: string;
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlane;
  let port = 0;
  let node: Awaited<ReturnType<typeof startNodeDaemon>>;
  let server: ImageServer;
  const builds: Buffer[] = [];
  let goldenId: string;
  const api = apiCaller(() => cp.url, API_TOKEN);

  /** Upstream publishes build `n`: the image and a sums file that lists it among others. */
  const publish = (n: number) => {
    const build = builds[n] as Buffer;
    server.setFile(IMAGE, build);
    server.setFile(SUMS, sha256Sums({ 'tiny.qcow2': build }));
  };

  const open = async () => {
    quantix = await createQuantix({
      database: testDb.config,
      plugins: [
        createImagesCloudPlugin({
          builtinCatalog: false,
          entries: [
            {
              id: ENTRY_ID,
              name: 'Tiny golden',
              os: { family: 'linux', distribution: 'tiny', version: '1', defaultUser: 'tiny', cloudInit: true },
              requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' },
              sourceUrl: `${server.url}${IMAGE}`,
              checksumUrl: `${server.url}${SUMS}`,
              checksumAlgorithm: 'sha256',
            },
            {
              id: ISO_ENTRY_ID,
              name: 'Tiny installer',
              kind: 'iso',
              format: 'iso',
              os: { family: 'linux', distribution: 'tiny', version: '1', defaultUser: null, cloudInit: false },
              requirements: ISO_REQUIREMENTS,
              sourceUrl: `${server.url}${ISO}`,
              checksumUrl: `${server.url}${ISO_SUMS}`,
              checksumAlgorithm: 'sha256',
            },
          ],
          // The control plane reads the sums file itself: the test server is on loopback.
          fetcher: { policy: { allowAddresses: ['127.0.0.0/8'] }, retry: { attempts: 1 } },
        }),
        createStorageLocalPlugin({ backend: false }),
      ],
      logger: silent,
    });
    cp = await startControlPlane({
      quantix,
      apiToken: API_TOKEN,
      port,
      stagingDir: join(root, 'staging'),
      poolRoots: createPoolRootPolicy({ allowedRoots: [root] }),
      goldenTickSeconds: 1,
    });
    port = Number(new URL(cp.url).port);
  };

  const imagesInPool = async () => (await api('GET', '/images?poolId=p1&limit=1000')).body.images as { id: string }[];
  const revisions = async () =>
    (await api('GET', `/images/${goldenId}/revisions`)).body.revisions as {
      revision: number;
      imageId: string;
      image: { phase: string; checksum: { value: string } | null; location: { relPath: string } };
    }[];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), `quantix-golden-${client}-`));
    for (let n = 0; n < 3; n++) builds.push(await makeQcow2(root, `build-${n}.qcow2`, 1));
    server = await startImageServer();
    publish(0);
    testDb = await createTestDatabase(client, client === 'pglite' ? { dataDir: join(root, 'db') } : {});
    await open();
    node = await startNodeWithPool({
      quantix,
      controlPlaneUrl: `http://127.0.0.1:${port}`,
      api,
      root,
      allowSourceAddresses: ['127.0.0.1'],
    });
    const started = await api('POST', '/images/download', { catalogId: ENTRY_ID, poolId: 'p1' });
    expect(started.status).toBe(202);
    goldenId = started.body.id;
    await waitFor(async () => (await api('GET', `/images/${goldenId}`)).body.phase === 'ready', 'revision 1', 60_000);
  }, 120_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await quantix?.close();
    await server?.close();
    await testDb?.dispose();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('refuses a schedule that is not cron with 400 INVALID_INPUT and the reason', async () => {
    for (const schedule of ['not a schedule', '61 * * * *', '* * * * * * *']) {
      const { status, body } = await api('PUT', `/images/${goldenId}/follow`, { schedule, keep: 1 });
      expect(status).toBe(400);
      expect(body.error.code).toBe('INVALID_INPUT');
      expect(body.error.message).toContain(schedule);
    }
    expect((await api('GET', `/images/${goldenId}/follow`)).status).toBe(404);
  });

  it('refuses to follow an image whose checksum went with a change of its file, until it is verified', async () => {
    // What a scan that found its file at another size leaves.
    await quantix.repositories.images.update(goldenId, { checksum: null });
    const refused = await api('PUT', `/images/${goldenId}/follow`, { schedule: '0 3 * * *', keep: 1 });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('IMAGE_NO_CHECKSUM');
    expect(refused.body.error.message).toContain('`quantix images verify`');
    // The file is the download's: verifying records its checksum again.
    const verified = await api('POST', `/images/${goldenId}/verify`);
    expect(verified.body).toMatchObject({
      outcome: 'recorded',
      checksum: { algorithm: 'sha256', value: sha256(builds[0] as Buffer) },
    });
    expect((await api('GET', `/images/${goldenId}/follow`)).status).toBe(404);
  });

  it('follows, and a check when upstream has not changed records the check and makes no row', async () => {
    // Two at once (a retried request): both answer the one follow.
    const [followed, again] = await Promise.all([
      api('PUT', `/images/${goldenId}/follow`, { schedule: '0 3 * * *', keep: 1 }),
      api('PUT', `/images/${goldenId}/follow`, { schedule: '0 3 * * *', keep: 1 }),
    ]);
    expect([followed.status, again.status]).toEqual([200, 200]);
    expect(followed.body).toMatchObject({
      id: goldenId,
      catalogId: ENTRY_ID,
      poolId: 'p1',
      keep: 1,
      latestRevision: 1,
    });
    const nextRun = new Date(followed.body.nextRunAt);
    expect(nextRun.getUTCHours()).toBe(3);
    // Every follow in one read (what the Images page shows its badges from), each as its own read gives it.
    const listed = await api('GET', '/golden-images');
    expect(listed.status).toBe(200);
    expect(listed.body.goldenImages).toEqual([(await api('GET', `/images/${goldenId}/follow`)).body]);
    expect(nextRun.getUTCMinutes()).toBe(0);
    expect(nextRun.getTime()).toBeGreaterThan(Date.now());
    const before = Date.now() - 1000;
    const check = await api('POST', `/images/${goldenId}/follow/check`);
    expect(check.status).toBe(200);
    expect(check.body).toMatchObject({
      outcome: 'unchanged',
      revision: null,
      checksum: `sha256:${sha256(builds[0] as Buffer)}`,
    });
    expect(await imagesInPool()).toHaveLength(1);
    const status = (await api('GET', `/images/${goldenId}/follow`)).body;
    expect(new Date(status.lastCheckAt).getTime()).toBeGreaterThanOrEqual(before);
    expect(status.lastCheck.outcome).toBe('unchanged');
    expect((await revisions()).map((r) => r.revision)).toEqual([1]);
  });

  it('downloads a changed build as revision 2, and keeps revision 1 while a VM uses it', async () => {
    const rev1 = await quantix.repositories.images.require(goldenId);
    const vm = await quantix.repositories.vms.create({
      name: 'uses-rev1',
      nodeId: 'n1',
      cpu: 1,
      memoryMiB: 64,
      bootImageId: goldenId,
      disks: [
        {
          imageId: goldenId,
          poolId: 'p1',
          relPath: 'vms/uses-rev1/disk.qcow2',
          sizeGiB: 1,
          format: 'qcow2',
          bus: 'virtio',
        },
      ],
    });
    publish(1);
    const check = await api('POST', `/images/${goldenId}/follow/check`);
    expect(check.body).toMatchObject({ outcome: 'new-revision', revision: 2 });
    const rev2Id = check.body.imageId as string;
    await waitFor(async () => (await api('GET', `/images/${rev2Id}`)).body.phase === 'ready', 'revision 2', 60_000);
    const rev2 = (await api('GET', `/images/${rev2Id}`)).body;
    expect(rev2.checksum).toEqual({ algorithm: 'sha256', value: sha256(builds[1] as Buffer) });
    expect(rev2.location).toEqual({ poolId: 'p1', relPath: `images/${ENTRY_ID}.r2.qcow2` });
    expect(rev2.labels).toMatchObject({ 'quantix.io/golden-image': goldenId, 'quantix.io/revision': '2' });
    expect(existsSync(join(root, 'pool', 'images', `${ENTRY_ID}.r2.qcow2`))).toBe(true);
    // keep = 1 would remove revision 1, but a VM uses it: it stays, and the status says why.
    await waitFor(
      async () => (await api('GET', `/images/${goldenId}/follow`)).body.keptInUse.length === 1,
      'kept-in-use',
    );
    const status = (await api('GET', `/images/${goldenId}/follow`)).body;
    expect(status.keptInUse).toEqual([
      { revision: 1, imageId: goldenId, vms: [expect.objectContaining({ id: vm.id, name: 'uses-rev1' })] },
    ]);
    expect(status.latestRevision).toBe(2);
    expect((await api('GET', `/images/${goldenId}`)).body.phase).toBe('ready');
    expect(existsSync(join(root, 'pool', rev1.location?.relPath as string))).toBe(true);
    expect((await revisions()).map((r) => [r.revision, r.image.phase])).toEqual([
      [2, 'ready'],
      [1, 'ready'],
    ]);
    // Either revision's id names the same golden image.
    expect((await api('GET', `/images/${rev2Id}/follow`)).body.id).toBe(goldenId);
    // Unfollowed and followed again from its first image: revision 2 is its own again, and the
    // next build is compared with it.
    expect((await api('DELETE', `/images/${goldenId}/follow`)).status).toBe(204);
    const refollowed = await api('PUT', `/images/${goldenId}/follow`, { schedule: '0 3 * * *', keep: 1 });
    expect(refollowed.body).toMatchObject({ id: goldenId, latestRevision: 2 });
    expect((await revisions()).map((r) => r.revision)).toEqual([2, 1]);
    expect((await api('POST', `/images/${goldenId}/follow/check`)).body.outcome).toBe('unchanged');

    // The VM goes; the next build prunes every revision but the newest.
    await quantix.repositories.vms.delete(vm.id);
    publish(2);
    const third = await api('POST', `/images/${rev2Id}/follow/check`);
    expect(third.body).toMatchObject({ outcome: 'new-revision', revision: 3 });
    await waitFor(async () => (await revisions()).length === 1, 'revisions 1 and 2 to be pruned', 60_000);
    const [rev3] = await revisions();
    expect(rev3).toMatchObject({ revision: 3, image: { phase: 'ready' } });
    expect(rev3?.image.checksum?.value).toBe(sha256(builds[2] as Buffer));
    expect((await api('GET', `/images/${goldenId}`)).status).toBe(404);
    expect((await api('GET', `/images/${rev2Id}`)).status).toBe(404);
    expect(existsSync(join(root, 'pool', 'images', `${ENTRY_ID}.r2.qcow2`))).toBe(false);
    expect(existsSync(join(root, 'pool', 'images', `${ENTRY_ID}.r3.qcow2`))).toBe(true);
    const after = (await api('GET', `/images/${goldenId}/follow`)).body;
    expect(after.lastCheck.removed).toEqual([
      { revision: 2, imageId: rev2Id },
      { revision: 1, imageId: goldenId },
    ]);
  });

  it('says so when the sums file no longer lists the image, and removes nothing', async () => {
    const before = (await imagesInPool()).map((image) => image.id);
    server.setFile(SUMS, sha256Sums({ 'renamed-tiny.qcow2': builds[2] as Buffer }));
    const check = await api('POST', `/images/${goldenId}/follow/check`);
    expect(check.status).toBe(200);
    expect(check.body).toMatchObject({ outcome: 'not-listed', code: 'CHECKSUM_UNAVAILABLE', revision: null });
    expect(check.body.message).toContain('tiny.qcow2');
    const status = (await api('GET', `/images/${goldenId}/follow`)).body;
    expect(status.lastCheck.outcome).toBe('not-listed');
    expect((await imagesInPool()).map((image) => image.id)).toEqual(before);
    expect((await revisions()).map((r) => r.revision)).toEqual([3]);
    publish(2);
  });

  it('keeps the schedule across a restart of the control plane, and runs it', async () => {
    const every = '*/1 * * * * *';
    expect((await api('PUT', `/images/${goldenId}/follow`, { schedule: every, keep: 1 })).status).toBe(200);
    await cp.close();
    await quantix.close();
    const restartedAt = Date.now();
    await open();
    await waitFor(
      async () => {
        const status = (await api('GET', `/images/${goldenId}/follow`)).body;
        return status.lastCheckAt !== null && new Date(status.lastCheckAt).getTime() > restartedAt;
      },
      'a scheduled check after the restart',
      30_000,
    );
    const status = (await api('GET', `/images/${goldenId}/follow`)).body;
    expect(status).toMatchObject({ schedule: every, keep: 1, lastCheck: { outcome: 'unchanged' } });
    // The node comes back to the restarted control plane (later tests download through it).
    await waitFor(
      async () => node.connection.connected && (await api('GET', '/nodes/n1')).body.connectionState === 'connected',
      'node n1 to reconnect',
      30_000,
    );
    expect((await imagesInPool()).length).toBe(1);
  });

  it('follows, checks, lists revisions and unfollows from the CLI', async () => {
    const tokenFile = join(root, 'token');
    writeFileSync(tokenFile, API_TOKEN, { mode: 0o600 });
    const cli = inProcessCli(() => cp.url, tokenFile);
    expect(await cli('images', 'follow', goldenId, '--schedule', '0 3 * * *', '--keep', '2')).toMatch(
      new RegExp(
        `^${goldenId} follows upstream \\(0 3 \\* \\* \\*, keep 2\\); next check \\d{4}-\\d\\d-\\d\\dT03:00:00.000Z$`,
      ),
    );
    expect(await cli('images', 'check-upstream', goldenId)).toBe('unchanged: Upstream has not changed');
    const listed = (await cli('images', 'revisions', goldenId)).split('\n');
    expect(listed[0]).toMatch(/^schedule 0 3 \* \* \*, keep 2, next check /);
    expect(listed[1]).toMatch(/^last check: unchanged at /);
    expect(listed[2]).toMatch(/^REVISION +IMAGE ID +PHASE +CHECKSUM +KEPT$/);
    expect(listed[3]).toMatch(new RegExp(`^3 +\\S+ +ready +sha256:${sha256(builds[2] as Buffer)}$`));
    // Unfollowing keeps every revision.
    expect(await cli('images', 'unfollow', goldenId)).toBe(`${goldenId} no longer follows upstream`);
    expect((await api('GET', `/images/${goldenId}/follow`)).status).toBe(404);
    expect((await imagesInPool()).length).toBe(1);
  });

  it('follows again from a later revision after an unfollow, numbering and naming on from it', async () => {
    const [rev3] = await imagesInPool();
    const again = await api('PUT', `/images/${rev3?.id}/follow`, { schedule: '0 3 * * *', keep: 1 });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: goldenId, catalogId: ENTRY_ID, latestRevision: 3 });
    expect((await revisions()).map((r) => [r.revision, r.imageId])).toEqual([[3, rev3?.id]]);
    publish(1);
    const check = await api('POST', `/images/${goldenId}/follow/check`);
    expect(check.body, check.body.message).toMatchObject({ outcome: 'new-revision', revision: 4 });
    await waitFor(async () => (await revisions()).length === 1 && (await revisions())[0]?.revision === 4, 'r4 only');
    const rev4 = (await api('GET', `/images/${check.body.imageId}`)).body;
    expect(rev4).toMatchObject({
      name: 'Tiny golden (r4)',
      phase: 'ready',
      location: { poolId: 'p1', relPath: `images/${ENTRY_ID}.r4.qcow2` },
      checksum: { algorithm: 'sha256', value: sha256(builds[1] as Buffer) },
    });
    expect((await api('DELETE', `/images/${goldenId}/follow`)).status).toBe(204);
  });
  it('records every revision of an installer ISO as an ISO, with what its entry says a VM needs, and downloads a failed one again at the next check', async () => {
    /** Upstream publishes installer build `n`: a real ISO 9660 image, and its sums file. */
    const publishIso = async (n: number) => {
      const build = await readFile(await buildIso(join(root, `installer-${n}.iso`), { volumeId: `TINY_${n}` }));
      server.setFile(ISO, build);
      server.setFile(ISO_SUMS, sha256Sums({ 'installer.iso': build }));
      return build;
    };
    await publishIso(0);
    const started = await api('POST', '/images/download', { catalogId: ISO_ENTRY_ID, poolId: 'p1' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const firstId = started.body.id as string;
    await waitFor(async () => (await api('GET', `/images/${firstId}`)).body.phase === 'ready', 'the ISO', 60_000);
    const first = (await api('GET', `/images/${firstId}`)).body;
    expect(first).toMatchObject({ kind: 'iso', format: 'iso', requirements: ISO_REQUIREMENTS });
    expect((await api('PUT', `/images/${firstId}/follow`, { schedule: '0 3 * * *', keep: 2 })).status).toBe(200);

    const build1 = await publishIso(1);
    const check = await api('POST', `/images/${firstId}/follow/check`);
    expect(check.body, check.body.message).toMatchObject({ outcome: 'new-revision', revision: 2 });
    await waitFor(async () => (await api('GET', `/images/${check.body.imageId}`)).body.phase === 'ready', 'r2', 60_000);
    const rev2 = (await api('GET', `/images/${check.body.imageId}`)).body;
    // A revision is what a catalog download of the entry is: an ISO (a CD-ROM for a VM, in the
    // pool's ISO folder), of the entry's OS, needing what the entry says — not a disk image of
    // the defaults.
    expect(rev2).toMatchObject({
      name: 'Tiny installer (r2)',
      kind: 'iso',
      format: 'iso',
      os: first.os,
      requirements: ISO_REQUIREMENTS,
      location: { poolId: 'p1', relPath: (first.location.relPath as string).replace(/\.iso$/, '.r2.iso') },
      checksum: { algorithm: 'sha256', value: sha256(build1) },
    });

    // Build 2 arrives corrupted (it does not verify): revision 3 fails. The next check finds
    // upstream unchanged and downloads revision 3 again, which the mirror now sends whole.
    server.behaviour.corruptPaths = [ISO];
    const build2 = await publishIso(2);
    const third = await api('POST', `/images/${firstId}/follow/check`);
    expect(third.body, third.body.message).toMatchObject({ outcome: 'new-revision', revision: 3 });
    const r3 = third.body.imageId as string;
    await waitFor(async () => (await api('GET', `/images/${r3}`)).body.phase === 'error', 'r3 to fail', 60_000);
    expect((await api('GET', `/images/${r3}`)).body.error).toMatchObject({
      code: 'CHECKSUM_MISMATCH',
      retryable: true,
    });
    server.behaviour.corruptPaths = [];
    const again = await api('POST', `/images/${firstId}/follow/check`);
    expect(again.body).toMatchObject({ outcome: 'unchanged', revision: 3, imageId: r3 });
    expect(again.body.message).toContain('revision 3 had failed (CHECKSUM_MISMATCH): downloading it again');
    await waitFor(async () => (await api('GET', `/images/${r3}`)).body.phase === 'ready', 'r3 again', 60_000);
    expect((await api('GET', `/images/${r3}`)).body.checksum.value).toBe(sha256(build2));
    expect((await api('DELETE', `/images/${firstId}/follow`)).status).toBe(204);
  });
});
