/**
 * NodeService on real databases: a node whose daemon runs in the control plane's own process
 * (`quantix up`'s local node) is given its token as it starts, and keeps it — an embedder's call
 * for a new token or a removal is refused as the API's is, where either would leave it refused.
 */
import { createQuantix, ErrorCode, type Quantix } from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';
import { tokenDigest } from '../tokens.js';

describe.each(TEST_DATABASE_CLIENTS)('NodeService on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config });
    cp = createControlPlane({ quantix, vmStateSeconds: 0 });
    await cp.start();
  });

  afterAll(async () => {
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  it('keeps the token of a node this process runs: a new token or its removal is refused with IN_USE', async () => {
    const { repositories } = quantix;
    await repositories.nodes.create({ id: 'local', hostname: 'here' });
    const token = await cp.nodes.issueInProcessToken('local');
    expect(await repositories.nodes.getTokenDigest('local')).toBe(tokenDigest(token));

    await expect(cp.nodes.issueToken('local')).rejects.toMatchObject({
      code: ErrorCode.IN_USE,
      message: expect.stringContaining('a new token would leave it refused until a restart'),
      details: { nodeId: 'local', inProcess: true },
    });
    await expect(cp.nodes.remove('local')).rejects.toMatchObject({
      code: ErrorCode.IN_USE,
      message: expect.stringContaining('removing it would leave it refused until a restart'),
    });
    // Nothing changed: the node is there, with the token it was given.
    expect(await repositories.nodes.getTokenDigest('local')).toBe(tokenDigest(token));

    // A node of its own daemon, elsewhere, is given new tokens and removed as ever.
    const { node, token: first } = await cp.nodes.register({ hostname: 'elsewhere' });
    const second = await cp.nodes.issueToken(node.id);
    expect(second).not.toBe(first);
    expect(await repositories.nodes.getTokenDigest(node.id)).toBe(tokenDigest(second));
    await cp.nodes.remove(node.id);
    expect(await repositories.nodes.get(node.id)).toBeUndefined();
  });
});
