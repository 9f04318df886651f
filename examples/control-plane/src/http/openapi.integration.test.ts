/**
 * The API description clients build on, as a started control plane (on PostgreSQL) serves it:
 * Redocly's linter (recommended rules) finds no error in it; every operation has an operationId,
 * a summary, a 2xx answer with its schema and error answers in the one error shape — routes
 * added later are held to the same; @quantix/client is generated from exactly this document;
 * and that client, against this control plane, gets every field of the records back.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ApiError, QuantixClient } from '@quantix/client';
import { createQuantix, type Quantix } from '@quantix/core';
import { createTestDatabase, type TestDatabase } from '@quantix/core/testing';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../control-plane.js';

const API_TOKEN = 'openapi-token';
const run = promisify(execFile);
const require = createRequire(import.meta.url);
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  parameters?: { in: string; name: string; schema?: unknown }[];
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Record<string, unknown> }> }>;
}
interface Document {
  paths: Record<string, Partial<Record<(typeof METHODS)[number], Operation>>>;
  components?: { schemas?: Record<string, unknown> };
}

describe('the OpenAPI document', () => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlane;
  let work: string;
  let document: Document;
  let client: QuantixClient;

  const operations = () =>
    Object.entries(document.paths).flatMap(([path, item]) =>
      METHODS.flatMap((method) =>
        item[method] ? [{ where: `${method.toUpperCase()} ${path}`, ...item[method] }] : [],
      ),
    );

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    quantix = await createQuantix({
      database: testDb.config,
      plugins: [createStorageLocalPlugin()],
      logger: pino({ level: 'silent' }),
    });
    work = await mkdtemp(join(tmpdir(), 'quantix-openapi-'));
    cp = await startControlPlane({ quantix, apiToken: API_TOKEN, stagingDir: join(work, 'staging') });
    const response = await fetch(`${cp.url}/api/v1/openapi.json`);
    expect(response.status).toBe(200);
    document = (await response.json()) as Document;
    client = new QuantixClient({ baseUrl: cp.url, token: API_TOKEN });
  });

  afterAll(async () => {
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('passes Redocly’s linter (recommended rules) with no error', async () => {
    const file = join(work, 'openapi.json');
    await writeFile(file, JSON.stringify(document));
    const bin = join(dirname(require.resolve('@redocly/cli/package.json')), 'bin', 'cli.js');
    // Offline and quiet: no telemetry, no update check.
    const { stdout } = await run(process.execPath, [bin, 'lint', file, '--extends=recommended', '--format=json'], {
      cwd: work,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const report = JSON.parse(stdout) as {
      totals: { errors: number; warnings: number };
      problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
    };
    const errors = report.problems
      .filter((problem) => problem.severity === 'error')
      .map((problem) => `${problem.ruleId} at ${problem.location[0]?.pointer}: ${problem.message}`);
    expect(errors).toEqual([]);
    expect(report.totals.errors).toBe(0);
    // The warnings left: the WebSockets (the node's, its console relays, console viewers) answer 101, not a 2xx.
    const warnings = report.problems.filter((problem) => problem.severity === 'warn');
    expect(warnings.map((w) => `${w.ruleId} ${w.location[0]?.pointer}`).sort()).toEqual([
      'operation-2xx-response #/paths/~1api~1v1~1node-consoles~1{sessionId}/get/responses',
      'operation-2xx-response #/paths/~1api~1v1~1nodes~1connect/get/responses',
      'operation-2xx-response #/paths/~1api~1v1~1vms~1{id}~1console/get/responses',
    ]);
  });

  it('gives every operation an operationId, a summary, a tag, a 2xx answer with its schema and its error answers', () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThanOrEqual(31);
    const problems: string[] = [];
    const ids = new Set<string>();
    for (const op of ops) {
      const { where, operationId, summary, tags, responses = {} } = op;
      if (!operationId || !/^[a-z][a-zA-Z0-9]*$/.test(operationId))
        problems.push(`${where}: operationId ${operationId}`);
      if (operationId && ids.has(operationId)) problems.push(`${where}: operationId ${operationId} used twice`);
      if (operationId) ids.add(operationId);
      if (!summary?.trim()) problems.push(`${where}: no summary`);
      if (!tags?.length) problems.push(`${where}: no tag`);
      const statuses = Object.keys(responses);
      // A success: a 2xx with a schema for its body, a 204 (no body), or a WebSocket's 101.
      const success = statuses.filter((status) => /^(2\d\d|101)$/.test(status));
      if (success.length === 0) problems.push(`${where}: no 2xx answer`);
      for (const status of success) {
        const content = responses[status]?.content;
        // The tus protocol's answers carry everything in headers (Location, Upload-Offset).
        const bodiless = status === '204' || status === '101' || where.includes('/uploads/tus');
        if (!bodiless && !Object.values(content ?? {}).some((media) => media.schema)) {
          problems.push(`${where}: ${status} has no schema`);
        }
      }
      const errors = statuses.filter((status) => /^[45]\d\d$/.test(status));
      if (!errors.some((status) => status.startsWith('4'))) problems.push(`${where}: no 4xx answer`);
      for (const status of errors) {
        const answer = responses[status];
        if (answer?.content?.['application/json']?.schema?.$ref !== '#/components/schemas/Error') {
          problems.push(`${where}: ${status} is not the Error schema`);
        }
        // Each error answer names the codes it carries, as the error registry gives their status.
        if (!/`[A-Z][A-Z0-9_]*`/.test(answer?.description ?? '')) problems.push(`${where}: ${status} lists no code`);
      }
      const pathParams = [...where.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
      for (const name of pathParams) {
        if (!op.parameters?.some((p) => p.in === 'path' && p.name === name && p.schema)) {
          problems.push(`${where}: path parameter ${name} not described`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(document.components?.schemas?.Error).toMatchObject({
      type: 'object',
      required: ['error'],
      properties: { error: { required: ['code', 'message', 'details'] } },
    });
  });

  it('lists, per error status, the codes the registry gives that status', () => {
    const deletePool = document.paths['/api/v1/pools/{id}']?.delete?.responses ?? {};
    expect(deletePool['404']?.description).toContain('`NOT_FOUND`');
    expect(deletePool['409']?.description).toContain('`IN_USE`');
    expect(deletePool['401']?.description).toContain('`UNAUTHORIZED`');
    const createVm = document.paths['/api/v1/vms']?.post?.responses ?? {};
    expect(createVm['409']?.description).toMatch(/`IMAGE_NOT_READY`[\s\S]*`POOL_NOT_ACTIVE_ON_NODE`/);
  });

  it('is the document @quantix/client is generated from (else: npm run openapi -w @quantix/example-control-plane)', async () => {
    const clientDocument = join(dirname(require.resolve('@quantix/client/package.json')), 'openapi.json');
    expect(JSON.parse(await readFile(clientDocument, 'utf8'))).toEqual(document);
  });

  it('lets the client read back every field of a pool, a node and a VM as the repositories hold them', async () => {
    const { repositories } = quantix;
    const { node, token } = await client.request('createNode', { body: { id: 'hv-openapi', hostname: 'hv-openapi' } });
    expect(token).toMatch(/.{20,}/);
    const pool = await client.request('createPool', {
      body: {
        id: 'pool-openapi',
        name: 'pool-openapi',
        type: 'local',
        config: { path: '/srv/quantix-openapi' },
        nodeIds: [node.id],
      },
    });
    await repositories.pools.setNodeState({ poolId: pool.id, nodeId: node.id, status: 'active', syncedGeneration: 1 });
    const vm = await repositories.vms.create({ name: 'vm-openapi', nodeId: node.id });

    const keys = (value: object) => Object.keys(value).sort();
    const poolAnswer = await client.request('getPool', { params: { id: pool.id } });
    const poolRecord = await repositories.pools.require(pool.id);
    expect(keys(poolAnswer)).toEqual(keys({ ...poolRecord, nodeStates: [] }));
    const [state] = poolAnswer.nodeStates;
    const stateRecord = await repositories.pools.getNodeState(pool.id, node.id);
    expect(keys(state ?? {})).toEqual(keys(stateRecord ?? {}));
    expect(keys(node)).toEqual(keys(await repositories.nodes.require(node.id)));
    const nodeAnswer = await client.request('getNode', { params: { id: node.id } });
    expect(nodeAnswer.pools.map((entry) => entry.state?.status)).toEqual(['active']);
    expect(keys(nodeAnswer.pools[0]?.pool ?? {})).toEqual(keys(poolRecord));
    expect(keys(nodeAnswer.pools[0]?.state ?? {})).toEqual(keys(stateRecord ?? {}));
    const vmAnswer = await client.request('showVm', { params: { id: vm.id } });
    expect(keys(vmAnswer)).toEqual(keys({ ...vm, nodeConnected: false }));
    expect(vmAnswer.createdAt).toBe(vm.createdAt.toISOString());

    const missing = await client.request('getPool', { params: { id: 'no-such-pool' } }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ApiError);
    expect(missing).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    const invalid = await client.request('createPool', { body: { name: '', type: 'local' } }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    expect((invalid as ApiError).fieldErrors()).toHaveProperty('name');

    expect(await client.request('deleteNode', { params: { id: node.id } }).catch((e: unknown) => e)).toMatchObject({
      status: 409,
      code: 'IN_USE',
    });
    await repositories.vms.delete(vm.id);
    await client.request('deletePool', { params: { id: pool.id } });
    expect(await client.request('deleteNode', { params: { id: node.id } })).toBeUndefined();
  });
});
