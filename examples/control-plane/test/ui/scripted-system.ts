/**
 * A control plane on real PostgreSQL with a node that is scripted, for the UI tests that need
 * a node to misbehave on cue: a download that fails, a pool that cannot be mounted, a node
 * that drops off. The node side is the daemon's real connection class (real WebSocket, real
 * protocol validation) with a handler that answers as a node would, without touching disks or
 * libvirt — the flows that need those run against the real node in harness.ts.
 */
import {
  type CatalogEntry,
  type ControlMessage,
  createQuantix,
  definePlugin,
  ImageCatalogToken,
  type NodeMessage,
  PROTOCOL_VERSION,
  type Quantix,
} from '@quantix/core';
import { createTestDatabase, type TestDatabase } from '@quantix/core/testing';
import { ControlPlaneConnection } from '@quantix/example-node-daemon';
import { createImagesIsoPlugin } from '@quantix/images-iso';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { createStorageNfsPlugin } from '@quantix/storage-nfs';
import { pino } from 'pino';
import { type ControlPlane, startControlPlane } from '../../src/control-plane.js';
import { until } from './helpers.js';

const silent = pino({ level: 'silent' });
/** What the scripted node's file.hash answers for every file. */
export const FILE_HASH = 'b'.repeat(64);
const GiB = 1024 ** 3;

function entry(
  id: string,
  name: string,
  file: string,
  sizeBytes: number,
  release: { distribution: string; version: string } = { distribution: 'tiny', version: '1' },
): CatalogEntry {
  return {
    id,
    name,
    description: `${name}, served by the test catalog`,
    kind: 'cloud',
    format: 'qcow2',
    os: { family: 'linux', ...release, arch: 'x86_64', defaultUser: 'tiny', cloudInit: true },
    requirements: { minCpu: 1, minMemoryMiB: 128, minDiskGiB: 1, firmware: 'any' },
    sourceUrl: `http://127.0.0.1:9/${file}`,
    checksum: null,
    checksumUrl: null,
    checksumAlgorithm: 'sha256',
    sizeBytes,
  };
}

export const SCRIPTED_CATALOG = {
  // An OS osinfo-db knows, so the wizard's sizes come from its resources.
  ready: entry('tiny-ready', 'Tiny ready image', 'tiny-ready.qcow2', 48 * 1024 * 1024, {
    distribution: 'ubuntu',
    version: '22.04',
  }),
  notDownloaded: entry('tiny-later', 'Tiny later image', 'tiny-later.qcow2', 96 * 1024 * 1024),
  /** Its download always fails on the node, half-way. */
  broken: entry('tiny-broken', 'Tiny broken image', 'tiny-broken.qcow2', 64 * 1024 * 1024),
};

/** The control plane's replica id: the Nodes page names it as the holder of the connected node. */
export const SCRIPTED_REPLICA_ID = 'cp-ui-1';

export interface ScriptedSystem {
  url: string;
  token: string;
  nodeId: string;
  /** The node-local pool for cloud images and VM disks, active on the node. */
  poolId: string;
  /** An NFS pool the node reports as unavailable (cannot mount). */
  brokenPoolId: string;
  catalog: { readyId: string; notDownloadedId: string; brokenId: string };
  quantix: Quantix;
  controlPlane: ControlPlane;
  /** Every request the node received, in order. */
  requests: Extract<ControlMessage, { type: 'request' }>['request'][];
  /** How long the node takes per download step (10 steps per download). */
  stepMs: number;
  disconnectNode(): Promise<void>;
  reconnectNode(): Promise<void>;
  stop(): Promise<void>;
}

export async function startScriptedSystem(options: { stepMs?: number } = {}): Promise<ScriptedSystem> {
  const token = 'ui-test-token';
  const nodeId = 'hv-ui';
  const db: TestDatabase = await createTestDatabase('pg');
  const entries = Object.values(SCRIPTED_CATALOG);
  const catalogPlugin = definePlugin({
    name: 'ui-test-catalog',
    apiVersion: 1,
    register: (ctx) =>
      ctx.provide(ImageCatalogToken, { value: { name: 'ui-test-catalog', list: async () => entries } }),
  });
  // Pool types from the storage plugins without their backends, as a control plane has them.
  const poolTypes = [createStorageLocalPlugin({ backend: false }), createStorageNfsPlugin({ backend: false })];
  // osinfo-db's OS resources (the VM defaults) from the machine's osinfo-db, as a control plane has them.
  const osinfo = createImagesIsoPlugin({ catalog: { entries: [] } });
  const quantix = await createQuantix({
    database: db.config,
    plugins: [catalogPlugin, osinfo, ...poolTypes],
    logger: silent,
  });
  const controlPlane = await startControlPlane({
    quantix,
    apiToken: token,
    resumeGraceMs: 1000,
    replica: { id: SCRIPTED_REPLICA_ID },
    // The scripted guests ignore ACPI (below): a stop gives up after a second, not a minute.
    vmStopTimeoutSeconds: 1,
  });
  const requests: ScriptedSystem['requests'] = [];
  /** The VMs powered off (a forced stop); every other VM created runs. */
  const poweredOff = new Set<string>();
  const stepMs = options.stepMs ?? 300;

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${controlPlane.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return (text ? JSON.parse(text) : null) as T;
  };

  const node = await api<{ token: string }>('POST', '/nodes', { id: nodeId, hostname: 'hv-ui' });
  // A second node that never connects: the pages must show it as disconnected.
  await api('POST', '/nodes', { id: 'hv-spare', hostname: 'hv-spare' });

  const answer = (message: ControlMessage, send: (m: NodeMessage) => void) => {
    if (message.type === 'pools.desired') {
      send({
        v: PROTOCOL_VERSION,
        type: 'pools.state',
        generation: message.generation,
        pools: message.pools.map((pool) =>
          pool.type === 'nfs'
            ? {
                poolId: pool.id,
                status: 'unavailable' as const,
                mountPath: null,
                capacityBytes: null,
                availableBytes: null,
                reason: 'mount.nfs: No such device (this kernel has no NFS client)',
              }
            : {
                poolId: pool.id,
                status: 'active' as const,
                mountPath: `/var/lib/quantix/${pool.id}`,
                capacityBytes: 200 * GiB,
                availableBytes: 120 * GiB,
                reason: null,
              },
        ),
      });
      return;
    }
    if (message.type !== 'request') return;
    const { request, requestId } = message;
    requests.push(request);
    const respond = (result: unknown) => send({ v: PROTOCOL_VERSION, type: 'response', requestId, result });
    const fail = (code: string, text: string) =>
      send({ v: PROTOCOL_VERSION, type: 'response', requestId, error: { code, message: text } });
    switch (request.op) {
      case 'source.check':
        return respond({ allowed: true });
      case 'image.download': {
        const total = entries.find((e) => request.sourceUrl.endsWith(e.sourceUrl.split('/').pop() ?? ''))?.sizeBytes;
        const size = total ?? 1024 * 1024;
        const broken = request.sourceUrl.includes('broken');
        let step = 0;
        const timer = setInterval(() => {
          step++;
          if (broken && step === 5) {
            clearInterval(timer);
            fail('DOWNLOAD_FAILED', `${request.sourceUrl} answered 404 Not Found`);
            return;
          }
          if (step <= 10) {
            send({
              v: PROTOCOL_VERSION,
              type: 'image.progress',
              imageId: request.imageId,
              bytesDone: Math.round((size * step) / 10),
              bytesTotal: size,
              bytesPerSecond: size / 10 / (stepMs / 1000),
              etaSeconds: ((10 - step) * stepMs) / 1000,
            });
            return;
          }
          clearInterval(timer);
          respond({
            sizeBytes: size,
            checksum: { algorithm: 'sha256', value: 'a'.repeat(64) },
            format: 'qcow2',
            virtualSizeBytes: 2 * GiB,
          });
        }, stepMs);
        return;
      }
      case 'file.stat':
        return respond({ exists: true, sizeBytes: 1024 });
      // Every file reads as the same bytes, which are not those its downloads recorded ('a'…).
      case 'file.hash':
        return respond({
          sizeBytes: 1024,
          checksum: { algorithm: request.algorithm, value: FILE_HASH },
          modifiedAt: null,
        });
      case 'vm.create':
        setTimeout(
          () => respond({ name: request.vm.name, uuid: '00000000-0000-4000-8000-000000000000', state: 'running' }),
          200,
        );
        return;
      case 'pool.scan':
        return respond({ poolId: request.poolId, content: request.content, files: 0, skipped: [] });
      // Guests that ignore the ACPI shutdown, as a busy or OS-less guest does: only a forced stop powers one off.
      case 'vm.stop':
        if (request.force) poweredOff.add(request.name);
        return respond({ name: request.name, state: poweredOff.has(request.name) ? 'shutoff' : 'running' });
      case 'vm.state':
        return respond({ name: request.name, state: poweredOff.has(request.name) ? 'shutoff' : 'running' });
      case 'vm.start':
        poweredOff.delete(request.name);
        return respond({ name: request.name, state: 'running' });
      // A host with libvirt's NAT network, whose DHCP gives each VM's first NIC an address.
      case 'node.networks':
        return respond({
          networks: [
            {
              attachment: 'network',
              name: 'default',
              active: true,
              forward: 'nat',
              bridge: 'virbr0',
              addresses: ['192.168.122.1/24'],
              dhcp: true,
            },
          ],
        });
      case 'vm.addresses': {
        const created = requests.findLast((r) => r.op === 'vm.create' && r.vm.name === request.name);
        const nic = created?.op === 'vm.create' ? created.vm.nics[0] : undefined;
        return respond({
          name: request.name,
          addresses: nic
            ? [
                {
                  mac: nic.mac,
                  interface: 'vnet0',
                  family: 'ipv4',
                  address: '192.168.122.10',
                  prefix: 24,
                  source: 'lease',
                },
              ]
            : [],
        });
      }
      default:
        return respond({});
    }
  };

  let connection: ControlPlaneConnection | undefined;
  const connect = async () => {
    connection = new ControlPlaneConnection({
      urls: [controlPlane.url],
      nodeId,
      token: node.token,
      hostname: 'hv-ui',
      agentVersion: 'scripted',
      logger: silent,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      handler: { handle: answer },
    });
    connection.start();
    await connection.ready;
    await waitUntil(
      async () => (await api<{ connected: boolean }>('GET', `/nodes/${nodeId}`)).connected,
      'node connected',
    );
  };
  await connect();

  await api('POST', '/pools', {
    id: 'local-images',
    name: 'Local images',
    type: 'local',
    config: { path: '/var/lib/quantix/local-images' },
    contentTypes: ['images', 'iso'],
    nodeIds: [nodeId],
  });
  await api('POST', '/pools', {
    id: 'nfs-isos',
    name: 'NFS ISOs',
    type: 'nfs',
    config: { server: '192.0.2.10', export: '/export/isos' },
    contentTypes: ['iso'],
    shared: true,
    nodeIds: [nodeId],
  });
  await waitUntil(async () => {
    const { pools } = await api<{ pools: { nodeStates: { status: string }[] }[] }>('GET', '/pools');
    return pools.length === 2 && pools.every((p) => p.nodeStates.length === 1);
  }, 'pool states');

  // The ready image: downloaded through the API like any other, before the browser looks.
  const image = await api<{ id: string }>('POST', '/images/download', {
    catalogId: SCRIPTED_CATALOG.ready.id,
    poolId: 'local-images',
  });
  await waitUntil(
    async () => (await api<{ phase: string }>('GET', `/images/${image.id}`)).phase === 'ready',
    'ready image',
    20_000,
  );

  return {
    url: controlPlane.url,
    token,
    nodeId,
    poolId: 'local-images',
    brokenPoolId: 'nfs-isos',
    catalog: {
      readyId: SCRIPTED_CATALOG.ready.id,
      notDownloadedId: SCRIPTED_CATALOG.notDownloaded.id,
      brokenId: SCRIPTED_CATALOG.broken.id,
    },
    quantix,
    controlPlane,
    requests,
    stepMs,
    async disconnectNode() {
      await connection?.close();
      await waitUntil(
        async () => !(await api<{ connected: boolean }>('GET', `/nodes/${nodeId}`)).connected,
        'node gone',
      );
    },
    reconnectNode: connect,
    async stop() {
      await connection?.close();
      await controlPlane.close();
      await quantix.close();
      await db.dispose();
    },
  };
}

const waitUntil = (probe: () => Promise<boolean>, what: string, timeoutMs?: number) =>
  until(probe, (ok) => ok, what, timeoutMs);
