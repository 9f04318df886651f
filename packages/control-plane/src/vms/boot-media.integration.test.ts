/**
 * A VM boots from its image, so an ISO without a boot record (a data disc: virtio-win's drivers,
 * tools) is no image to make a VM from — only to put into a VM's drive. On the path that runs: a
 * real NodeAgent lists a real pool directory and reads each ISO with @quantix/images-iso (the
 * scan labels them), provisions VMs on libvirt's built-in test hypervisor (`test:///default`, no
 * daemon), and is joined to the hub by the in-process pipe that stands in for the WebSocket
 * (__fixtures__/in-process-node.ts); the records are in PostgreSQL or PGlite. Putting a data disc
 * into a VM's drive is examples/control-plane's vm-network e2e (the test hypervisor cannot change
 * media).
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPoolRootPolicy,
  createQuantix,
  type Image,
  LocalCommandRunner,
  type Quantix,
  type StoragePool,
} from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import { createIsoInspector, ISO_LABELS } from '@quantix/images-iso';
import { buildIso, REAL_MEDIA, requireIsoTools } from '@quantix/images-iso/testing';
import { LibvirtHypervisor, NodeAgent, VmProvisioner } from '@quantix/node-runtime';
import { LocalStorageBackend, localPoolType, storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessLink, inProcessLink } from '../__fixtures__/in-process-node.js';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';
import { ControlPlaneErrorCode } from '../errors.js';
import { listAvailableImages } from '../images/available.js';

let base: string;
const made: Record<string, string> = {};

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-boot-media-'));
  made.installer = await buildIso(join(base, 'installer.iso'), REAL_MEDIA.debian12);
  // What virtio-win's ISO is: drivers on an ISO9660 volume, no El Torito catalog.
  made.drivers = await buildIso(join(base, 'drivers.iso'), {
    volumeId: 'virtio-win-0.1.262',
    boot: null,
    files: { 'README.txt': 'drivers\n' },
  });
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe.each(TEST_DATABASE_CLIENTS)('VMs boot from bootable media only, on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;
  let link: InProcessLink;
  let agent: NodeAgent;
  let hypervisor: LibvirtHypervisor;
  let nodeId: string;
  let pool: StoragePool;

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config, plugins: [storageLocalPlugin] });
    cp = createControlPlane({ quantix, vmStateSeconds: 0 });
    await cp.start();
    const root = join(base, `${client}-pool`);
    await mkdir(root);
    await copyFile(made.installer as string, join(root, 'debian-12.7.0-amd64-netinst.iso'));
    await copyFile(made.drivers as string, join(root, 'virtio-win-0.1.262.iso'));
    nodeId = (await quantix.repositories.nodes.create({ hostname: `boot-media-${client}` })).id;
    pool = await quantix.repositories.pools.create({
      name: `media-${client}`,
      type: 'local',
      config: { path: root },
      contentTypes: ['iso', 'images'],
      nodeIds: [nodeId],
    });
    hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: 'test:///default' });
    link = inProcessLink();
    agent = new NodeAgent({
      nodeId,
      backends: [new LocalStorageBackend()],
      poolTypes: [localPoolType],
      poolRoots: createPoolRootPolicy({ allowedRoots: [base] }),
      inspector: createIsoInspector(),
      hypervisor,
      vms: new VmProvisioner({ runner: new LocalCommandRunner(), hypervisor, virtType: 'qemu' }),
      poolRecheckIntervalMs: 0,
      send: (message) => link.send(message),
    });
    link.connect(agent, cp.hub, nodeId);
    // Welcomed, its pool synced and scanned: both ISOs have their rows.
    const until = Date.now() + 30_000;
    while ((await quantix.repositories.images.count({ poolId: pool.id })) < 2) {
      if (Date.now() > until) throw new Error('the pool scan did not record both ISOs');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  afterAll(async () => {
    link?.close();
    await agent?.close();
    await hypervisor?.close();
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  const iso = async (relPath: string) =>
    (await quantix.repositories.images.getByLocation({ poolId: pool.id, relPath })) as Image;

  it('offers the installer to boot and the data disc not, saying why', async () => {
    const installer = await iso('debian-12.7.0-amd64-netinst.iso');
    const drivers = await iso('virtio-win-0.1.262.iso');
    expect(drivers.labels[ISO_LABELS.boot]).toBe('none');
    const view = await listAvailableImages({ repositories: quantix.repositories, catalog: cp.catalog, nodeId });
    const choice = (image: Image) => view.images.find((offered) => offered.imageId === image.id);
    expect(choice(installer)).toMatchObject({ status: 'ready', selectable: true, reason: null });
    // Its file is there and readable (ready); it is just nothing to boot from.
    expect(choice(drivers)).toMatchObject({
      status: 'ready',
      selectable: false,
      reason: expect.stringContaining('no boot record'),
    });
  });

  it('refuses a VM made from the data disc before anything is made; one from the installer is made', async () => {
    const drivers = await iso('virtio-win-0.1.262.iso');
    const refused = await cp.vms.create({ name: `drivers-${client}`, nodeId, imageId: drivers.id }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({
      code: ControlPlaneErrorCode.IMAGE_NOT_BOOTABLE,
      message: expect.stringContaining(`${drivers.name} has no boot record`),
      details: { imageId: drivers.id },
    });
    expect(await quantix.repositories.vms.getByName(`drivers-${client}`)).toBeUndefined();
    expect((await hypervisor.list()).map((domain) => domain.name)).not.toContain(`drivers-${client}`);

    const installer = await iso('debian-12.7.0-amd64-netinst.iso');
    const vm = await cp.vms.create({ name: `install-${client}`, nodeId, imageId: installer.id, memoryMiB: 512 });
    expect(vm).toMatchObject({ state: 'running', cdroms: [{ imageId: installer.id }] });
    expect((await hypervisor.list()).map((domain) => domain.name)).toContain(`install-${client}`);
  });
});
