// Child process for the restart test: writes a full set of records through a Quantix
// instance, prints them as JSON, then exits — gracefully (close) or abruptly (SIGKILL itself).
import { createQuantix, type DatabaseConfig } from '../../src/index.js';

const config = JSON.parse(process.argv[2] ?? '{}') as DatabaseConfig;
const mode = process.argv[3] ?? 'close';

const quantix = await createQuantix({ database: config });
const { images, pools, nodes, vms } = quantix.repositories;
const node = await nodes.create({ hostname: 'hv-restart', address: '192.0.2.7', labels: { zone: 'a' }, capabilities: { kvm: true } });
const pool = await pools.create({
  name: 'restart pool',
  type: 'nfs',
  config: { server: '192.0.2.1', export: '/srv/nfs/qVDS01', options: ['vers=4.2'] },
  contentTypes: ['iso', 'images'],
  shared: true,
  nodeIds: [node.id],
});
const state = await pools.setNodeState({
  poolId: pool.id,
  nodeId: node.id,
  status: 'active',
  mountPath: '/srv/nfs/qVDS01',
  capacityBytes: 8 * 1024 ** 4,
  availableBytes: 3 * 1024 ** 4,
  syncedGeneration: 17,
});
const cloud = await images.create({
  name: 'Ubuntu 24.04 LTS',
  description: 'cloud image with every field set',
  labels: { channel: 'lts', 'quantix.io/arch': 'amd64' },
  kind: 'cloud',
  format: 'qcow2',
  os: { family: 'linux', distribution: 'ubuntu', version: '24.04', arch: 'x86_64', defaultUser: 'ubuntu', cloudInit: true },
  requirements: { minCpu: 2, minMemoryMiB: 2048, minDiskGiB: 20, firmware: 'uefi' },
  catalogId: 'ubuntu-24.04-cloud-amd64',
  sizeBytes: 600 * 1024 ** 2,
  virtualSizeBytes: 3.5 * 1024 ** 3,
  checksum: { algorithm: 'sha256', value: 'ab'.repeat(32) },
  location: { poolId: pool.id, relPath: 'cloud/noble-server-cloudimg-amd64.img' },
  nodeId: node.id,
  fileModifiedAt: new Date('2026-11-20T08:15:30.250Z'),
});
const downloading = await images.update(cloud.id, { phase: 'downloading', progress: { bytesDone: 1234, bytesTotal: 600 * 1024 ** 2, percent: 0.2 } });
const verifying = await images.update(cloud.id, { phase: 'verifying' });
const ready = await images.update(cloud.id, { phase: 'ready', progress: null });
const failed = await images.create({ name: 'Broken download', kind: 'cloud', catalogId: 'debian-12' });
const failedNow = await images.update(failed.id, {
  phase: 'error',
  error: { code: 'CHECKSUM_MISMATCH', message: 'sha256 differs', retryable: true },
});
await images.upsertByLocation(
  Array.from({ length: 50 }, (_, i) => ({ poolId: pool.id, relPath: `iso/disc-${i}.iso`, kind: 'iso' as const, sizeBytes: 1000 + i })),
);
const vm = await vms.create({
  name: 'restart-vm',
  nodeId: node.id,
  cpu: 2,
  memoryMiB: 2048,
  firmware: 'uefi',
  disks: [{ imageId: ready.id, poolId: pool.id, relPath: 'vms/restart-vm.qcow2', sizeGiB: 20 }],
  cdroms: [{ imageId: null, poolId: pool.id, relPath: 'iso/disc-1.iso' }],
  bootImageId: ready.id,
  labels: { app: 'web' },
});
const all = await images.list();
process.stdout.write(`${JSON.stringify({ node, pool, state, images: all, vm, history: [downloading.version, verifying.version, ready.version, failedNow.version] })}\n`);

if (mode === 'kill') {
  // No close, no flush: the process dies the way a crash or an OOM kill ends it.
  process.kill(process.pid, 'SIGKILL');
} else {
  await quantix.close();
}
