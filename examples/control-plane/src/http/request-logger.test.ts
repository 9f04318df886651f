import { createLogger } from '@quantix/core';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { requestLogger } from './request-logger.js';

/** A real fastify server on our logger, its lines collected. */
async function server(level: string) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, childLoggerFactory: requestLogger });
  app.get('/quiet', async () => ({ ok: true }));
  app.get('/loud', async (request) => {
    request.log.warn({ token: 'secret-token', nodeId: 'node-1' }, 'something to see');
    request.log.debug('detail');
    return { ok: true };
  });
  app.get('/own-level', { logLevel: 'debug' }, async (request) => {
    request.log.debug('detail of a route that asks for it');
    return { ok: true };
  });
  await app.ready();
  // Counted from here: fastify makes loggers of its own while it starts.
  const makeChild = vi.spyOn(logger, 'child');
  return { app, lines, makeChild };
}

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

describe('request loggers', () => {
  it('makes no child logger for a request that logs nothing at the level in force', async () => {
    const { app, lines, makeChild } = await server('warn');
    close = () => app.close();
    expect((await app.inject({ url: '/quiet' })).statusCode).toBe(200);
    expect(makeChild).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
  });

  it('writes what is logged with the request id, redacted, and nothing below the level', async () => {
    const { app, lines, makeChild } = await server('warn');
    close = () => app.close();
    const response = await app.inject({ url: '/loud' });
    expect(response.statusCode).toBe(200);
    expect(makeChild).toHaveBeenCalledTimes(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'something to see', nodeId: 'node-1', token: '[redacted]' });
    expect(lines[0]?.reqId).toEqual(expect.any(String));
  });

  it("follows the server's level when it changes, and a route's own level", async () => {
    const { app, lines } = await server('warn');
    close = () => app.close();
    await app.inject({ url: '/own-level' });
    expect(lines.map((line) => line.msg)).toContain('detail of a route that asks for it');
    app.log.level = 'debug';
    await app.inject({ url: '/loud' });
    expect(lines.map((line) => line.msg)).toEqual(
      expect.arrayContaining(['incoming request', 'something to see', 'detail', 'request completed']),
    );
    // Every line of one request carries the same request id.
    const loud = lines.filter((line) => line.msg === 'something to see' || line.msg === 'detail');
    expect(new Set(loud.map((line) => line.reqId)).size).toBe(1);
  });
});
