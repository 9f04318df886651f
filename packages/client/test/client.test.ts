/**
 * The client against a real HTTP server on loopback. The server is a stand-in that answers as
 * the control plane does (its JSON shapes and error shape) and records what it received: these
 * tests pin what goes over the wire. The client against the real control plane is exercised by
 * examples/control-plane (src/http/openapi.integration.test.ts, the CLI and UI end-to-end tests).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { ApiError, QuantixClient, type ResponseBody } from '../src/index.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

let server: Server;
let baseUrl: string;
const received: Received[] = [];
/** What the server answers next, in order; then 200 {}. */
const answers: Answer[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks),
      });
      const answer = answers.shift() ?? { status: 200, body: {} };
      const text = answer.body === undefined ? '' : JSON.stringify(answer.body);
      response.writeHead(answer.status, {
        ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}),
        ...answer.headers,
      });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const reset = () => {
  received.length = 0;
  answers.length = 0;
};

describe('QuantixClient', () => {
  it('calls an operation by its operationId: method, path with its parameters encoded, query, token', async () => {
    reset();
    const image = { id: 'img 1', name: 'debian.iso', phase: 'ready' };
    answers.push({ status: 200, body: image });
    const client = new QuantixClient({ baseUrl, token: 'secret' });
    const answer = await client.request('getImage', { params: { id: 'img 1/x' }, query: { nodeId: 'hv-1' } });
    expect(answer).toEqual(image);
    expect(received).toMatchObject([
      { method: 'GET', url: '/api/v1/images/img%201%2Fx?nodeId=hv-1', headers: { authorization: 'Bearer secret' } },
    ]);
    expect(received[0]?.headers['idempotency-key']).toBeUndefined();
    expectTypeOf(answer).toEqualTypeOf<ResponseBody<'getImage'>>();
    expectTypeOf(answer.phase).toEqualTypeOf<
      'pending' | 'downloading' | 'verifying' | 'ready' | 'error' | 'deleting' | 'missing'
    >();
  });

  it('sends a write’s body as JSON with an Idempotency-Key, and leaves out query values not given', async () => {
    reset();
    answers.push({ status: 201, body: { id: 'vm-1', name: 'web-1' } });
    const client = new QuantixClient({ baseUrl, token: () => 'from-store' });
    const vm = await client.request('createVm', { body: { name: 'web-1', nodeId: 'hv-1', imageId: 'img-1', cpu: 2 } });
    expect(vm).toMatchObject({ id: 'vm-1' });
    const [request] = received;
    expect(request).toMatchObject({
      method: 'POST',
      url: '/api/v1/vms',
      headers: { authorization: 'Bearer from-store', 'content-type': 'application/json' },
    });
    expect(request?.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(request?.body.toString() ?? '')).toEqual({
      name: 'web-1',
      nodeId: 'hv-1',
      imageId: 'img-1',
      cpu: 2,
    });

    await client.request('listImages', { query: { kind: 'iso', text: undefined, limit: 5 } });
    expect(received[1]?.url).toBe('/api/v1/images?kind=iso&limit=5');
  });

  it('throws one ApiError with the status, code, message and details of the error answer', async () => {
    reset();
    const issues = [
      { path: 'body.name', message: 'Too small' },
      { path: 'body.sshAuthorizedKeys.2', message: 'Too long' },
    ];
    answers.push({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'Invalid request', details: { issues } } },
    });
    const client = new QuantixClient({ baseUrl, token: 't' });
    const error = await client.request('createPool', { body: { name: '', type: 'local' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      status: 400,
      code: 'INVALID_INPUT',
      message: 'Invalid request',
      details: { issues },
    });
    expect((error as ApiError).fieldErrors()).toEqual({ name: 'Too small', sshAuthorizedKeys: 'Too long' });

    // An answer that is not the API's error shape still fails with a code.
    answers.push({ status: 502, headers: { 'content-type': 'text/plain' } });
    const bare = await client.request('listPools').catch((e: unknown) => e);
    expect(bare).toMatchObject({ status: 502, code: 'HTTP_502', details: {} });
  });

  it('sends a write once more with the same key after a 503, and never retries a read', async () => {
    reset();
    answers.push({ status: 503, body: { error: { code: 'DATABASE_UNAVAILABLE', message: 'retry', details: {} } } });
    answers.push({ status: 200, body: { scanned: [], failed: [] } });
    const client = new QuantixClient({ baseUrl, token: 't', retryDelayMs: 10 });
    expect(await client.request('rescanImages', { body: { poolId: 'p' } })).toEqual({ scanned: [], failed: [] });
    expect(received).toHaveLength(2);
    expect(received[1]?.headers['idempotency-key']).toBe(received[0]?.headers['idempotency-key']);

    reset();
    answers.push({ status: 503, body: { error: { code: 'DATABASE_UNAVAILABLE', message: 'retry', details: {} } } });
    await expect(client.request('listPools')).rejects.toMatchObject({ status: 503, code: 'DATABASE_UNAVAILABLE' });
    expect(received).toHaveLength(1);
  });

  it('answers a 204 with undefined, and tells onUnauthorized of a 401 on the client’s own token', async () => {
    reset();
    answers.push({ status: 204 });
    let unauthorized = 0;
    const client = new QuantixClient({ baseUrl, token: 't', onUnauthorized: () => unauthorized++ });
    expect(await client.request('deleteVm', { params: { id: 'vm-1' } })).toBeUndefined();
    expect(received[0]).toMatchObject({ method: 'DELETE', url: '/api/v1/vms/vm-1' });

    const refusal = { status: 401, body: { error: { code: 'UNAUTHORIZED', message: 'wrong token', details: {} } } };
    answers.push(refusal, refusal);
    await expect(client.request('listNodes')).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(unauthorized).toBe(1);
    // A call with a token of its own (checking one before keeping it) leaves the handler alone.
    await expect(client.request('listNodes', { token: 'candidate' })).rejects.toMatchObject({ status: 401 });
    expect(unauthorized).toBe(1);
    expect(received.at(-1)?.headers.authorization).toBe('Bearer candidate');
  });

  it('uploads raw bytes as application/octet-stream', async () => {
    reset();
    answers.push({ status: 201, body: { id: 'iso-1' } });
    const client = new QuantixClient({ baseUrl, token: 't' });
    const bytes = new TextEncoder().encode('CD001 bytes');
    await client.request('uploadImage', { query: { poolId: 'p', name: 'a.iso' }, body: bytes });
    expect(received[0]).toMatchObject({
      method: 'POST',
      url: '/api/v1/images/upload?poolId=p&name=a.iso',
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(received[0]?.body.toString()).toBe('CD001 bytes');
  });

  it('fails with UNREACHABLE (status 0) when nothing answers', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const client = new QuantixClient({ baseUrl: url, token: 't', retryDelayMs: 10 });
    const error = await client.request('listPools').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 0, code: 'UNREACHABLE' });
    expect((error as ApiError).message).toContain(url);
  });

  it('types each operation’s input: a missing path parameter or a wrong body does not compile', () => {
    const client = new QuantixClient({ baseUrl, token: 't' });
    // Compile-time checks only (test/tsconfig.json); the calls are never sent.
    const never = () => {
      // @ts-expect-error getPool needs params.id
      void client.request('getPool');
      // @ts-expect-error createVm's body needs name, nodeId and imageId
      void client.request('createVm', { body: { name: 'x' } });
      // @ts-expect-error no such operation
      void client.request('listEverything');
    };
    expect(typeof never).toBe('function');
    expectTypeOf<ResponseBody<'deleteVm'>>().toEqualTypeOf<undefined>();
    expectTypeOf<ResponseBody<'listPools'>['pools'][number]['nodeStates'][number]['status']>().toEqualTypeOf<
      'pending' | 'active' | 'inactive' | 'unavailable' | 'error' | 'unknown'
    >();
  });
});
