/**
 * The node agent with the NFS backend and a real nfs-ganesha on loopback: an export the node finds
 * mounted somewhere else (read from a mount table, as /proc/self/mountinfo says it) must not share
 * a directory with another pool. The mount table is a file this test writes; the server answering
 * for the export is real.
 */
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPoolRootPolicy,
  LocalCommandRunner,
  type NodeMessage,
  type PoolReport,
  PROTOCOL_VERSION,
  type ProtocolPool,
} from '@quantix/core';
import { NodeAgent } from '@quantix/node-runtime';
import { LocalStorageBackend, localPoolType } from '@quantix/storage-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfsStorageBackend } from './backend.js';
import { nfsPoolType } from './config.js';
import { type NfsTestServer, startNfsTestServer } from './testing/ganesha.js';

describe('NodeAgent with an NFS export mounted elsewhere', () => {
  let base: string;
  let nfsServer: NfsTestServer;
  const runner = new LocalCommandRunner();
  const sent: NodeMessage[] = [];

  beforeAll(async () => {
    base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-agent-nfs-')));
    await mkdir(join(base, 'export'));
    nfsServer = await startNfsTestServer(join(base, 'export'));
  });

  afterAll(async () => {
    await nfsServer?.stop();
    await runner.close();
    await rm(base, { recursive: true, force: true });
  });

  /** Each pool's state as the agent's last pools.state said it. */
  const states = (): Record<string, PoolReport> => {
    const last = [...sent].reverse().find((m) => m.type === 'pools.state');
    return Object.fromEntries((last?.type === 'pools.state' ? last.pools : []).map((p) => [p.poolId, p]));
  };
  /** The agent's response to a scan of `poolId`. */
  const scanAnswer = async (node: NodeAgent, poolId: string) => {
    await node.handle({
      v: PROTOCOL_VERSION,
      type: 'request',
      requestId: `scan-${poolId}`,
      request: { op: 'pool.scan', poolId, content: 'iso' },
    });
    return [...sent].reverse().find((m) => m.type === 'response' && m.requestId === `scan-${poolId}`);
  };

  it('refuses the export found inside another pool’s directory, or the pool around it, whichever is newer', async () => {
    const allowed = join(base, 'allowed');
    const shelf = join(allowed, 'shelf');
    const mountPoint = join(shelf, 'isos');
    await mkdir(mountPoint, { recursive: true });
    // The export mounted by hand inside the local pool's directory.
    const table = join(base, 'mountinfo');
    await writeFile(
      table,
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n' +
        `130 27 0:130 / ${mountPoint} rw,relatime shared:130 - nfs4 ${nfsServer.server}:${nfsServer.exportDir} rw,vers=4.2,addr=${nfsServer.server}\n`,
    );
    const poolRoots = createPoolRootPolicy({ allowedRoots: [allowed] });
    const nfs = new NfsStorageBackend({ runner, mountInfoPath: table, rootPolicy: poolRoots });
    const node = new NodeAgent({
      nodeId: 'n1',
      backends: [new LocalStorageBackend(), nfs],
      poolTypes: [localPoolType, nfsPoolType],
      poolRoots,
      send: (message) => void sent.push(message),
    });
    const local = (id: string): ProtocolPool => ({
      id,
      name: id,
      type: 'local',
      config: { path: shelf },
      contentTypes: ['iso'],
      shared: false,
    });
    // Its own mount point is apart from the shelf: only where the export really is meets it.
    const isos: ProtocolPool = {
      id: 'isos',
      name: 'isos',
      type: 'nfs',
      config: { server: nfsServer.server, export: nfsServer.exportDir, mountPoint: join(allowed, 'nfs', 'isos') },
      contentTypes: ['iso'],
      shared: true,
    };
    const push = (generation: number, pools: ProtocolPool[]) =>
      node.handle({ v: PROTOCOL_VERSION, type: 'pools.desired', generation, pools });
    try {
      // The local pool is the older: the export found inside it is refused.
      await push(1, [local('shelf'), isos]);
      let byId = states();
      expect(byId.shelf).toMatchObject({ status: 'active', mountPath: shelf });
      expect(byId.isos, JSON.stringify(byId.isos)).toMatchObject({ status: 'error', mountPath: null });
      expect(byId.isos?.reason).toBe(
        `Pool isos's root ${mountPoint} lies inside pool shelf's root ${shelf} on node n1: a file there would be both pools', listed by both and deleted through either; give one pool a directory apart from the other's`,
      );
      expect(await scanAnswer(node, 'isos')).toMatchObject({ error: { code: 'NOT_FOUND' } });

      // The export's pool is the older: the local pool around where it is mounted is refused.
      await push(2, [isos, local('outer')]);
      byId = states();
      expect(byId.isos, JSON.stringify(byId.isos)).toMatchObject({ status: 'active', mountPath: mountPoint });
      expect(byId.outer).toMatchObject({ status: 'error', mountPath: null });
      expect(byId.outer?.reason).toMatch(
        new RegExp(`^Pool outer's root ${shelf} contains pool isos's root ${mountPoint}`),
      );
      expect(await scanAnswer(node, 'outer')).toMatchObject({ error: { code: 'NOT_FOUND' } });

      // The server away when the push came: unavailable, nowhere yet. Back, the re-check finds
      // where the export is and lets the newer pool go.
      await nfsServer.stop();
      await push(3, [local('shelf'), isos]);
      byId = states();
      expect(byId.shelf).toMatchObject({ status: 'active' });
      expect(byId.isos).toMatchObject({ status: 'unavailable', mountPath: null });
      await nfsServer.start();
      sent.length = 0;
      const changed = await node.recheckPools();
      expect(changed.find((report) => report.poolId === 'isos')).toMatchObject({
        status: 'error',
        reason: expect.stringMatching(/^Pool isos's root .* lies inside pool shelf's root/),
      });
      expect(states().isos).toMatchObject({ status: 'error' });
      expect(await scanAnswer(node, 'isos')).toMatchObject({ error: { code: 'NOT_FOUND' } });
    } finally {
      await node.close();
    }
  });
});
