/**
 * A node built by the kernel: the agent is whatever the plugins provide. A storage plugin the
 * agent has never heard of (a pool type of its own, on real directories) works without a change
 * to the agent or the daemon.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPoolRootPolicy,
  createQuantix,
  definePlugin,
  type NodeMessage,
  PoolTypeToken,
  PROTOCOL_VERSION,
  type QuantixNode,
  StorageBackendToken,
} from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createNodeAgent } from './compose.js';

/** A storage plugin of a type nothing in Quantix knows: a directory named by `dir`. */
const scratchPlugin = definePlugin({
  name: 'test-scratch-storage',
  apiVersion: '^1.1.0',
  needs: [],
  register(ctx) {
    const configSchema = z.object({ dir: z.string() }).strict();
    ctx.provide(PoolTypeToken, {
      value: { type: 'scratch', configSchema, roots: (config: { dir: string }) => [config.dir] },
    });
    ctx.provide(StorageBackendToken, {
      value: {
        type: 'scratch',
        async activate({ pool }) {
          const dir = (pool.config as { dir: string }).dir;
          await mkdir(dir, { recursive: true });
          return {
            available: true,
            reason: null,
            rootPath: dir,
            capacityBytes: null,
            availableBytes: null,
            usedBytes: null,
          };
        },
        async status({ pool }) {
          const dir = (pool.config as { dir: string }).dir;
          return {
            available: true,
            reason: null,
            rootPath: dir,
            capacityBytes: null,
            availableBytes: null,
            usedBytes: null,
          };
        },
        async list() {
          return { files: [], skipped: [] };
        },
        async resolve({ pool, relPath }) {
          return join((pool.config as { dir: string }).dir, relPath);
        },
      },
    });
  },
});

describe('createNodeAgent', () => {
  let root: string;
  let node: QuantixNode;
  const sent: NodeMessage[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'quantix-compose-'));
    node = await createQuantix({ database: false, plugins: [scratchPlugin] });
  });
  afterAll(async () => {
    await node?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('serves a pool type it learns only from a plugin', async () => {
    const agent = createNodeAgent(node, {
      nodeId: 'n1',
      poolRoots: createPoolRootPolicy({ allowedRoots: [root] }),
      send: (message) => {
        sent.push(message);
      },
    });
    expect(agent.hello({ hostname: 'n1', agentVersion: 't' })).toMatchObject({
      capabilities: { poolTypes: ['scratch'] },
    });
    const dir = join(root, 'scratch-1');
    await agent.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 1,
      pools: [{ id: 'p1', name: 'p1', type: 'scratch', config: { dir }, contentTypes: ['images'], shared: false }],
    });
    expect(sent.at(-1)).toMatchObject({
      type: 'pools.state',
      pools: [{ poolId: 'p1', status: 'active', mountPath: dir }],
    });
    expect((await stat(dir)).isDirectory()).toBe(true);
    writeFileSync(join(dir, 'disk.qcow2'), 'x'.repeat(42));
    await agent.handle({
      v: PROTOCOL_VERSION,
      type: 'request',
      requestId: 'r1',
      request: { op: 'file.stat', poolId: 'p1', relPath: 'disk.qcow2' },
    });
    expect(sent.at(-1)).toMatchObject({ type: 'response', requestId: 'r1', result: { exists: true, sizeBytes: 42 } });
    // Outside the node's pool roots, the same plugin's pool is refused before its backend sees it.
    await agent.handle({
      v: PROTOCOL_VERSION,
      type: 'pools.desired',
      generation: 2,
      pools: [
        { id: 'p2', name: 'p2', type: 'scratch', config: { dir: '/etc' }, contentTypes: ['images'], shared: false },
      ],
    });
    expect(sent.at(-1)).toMatchObject({ type: 'pools.state', pools: [{ poolId: 'p2', status: 'error' }] });
    await agent.close();
  });
});
