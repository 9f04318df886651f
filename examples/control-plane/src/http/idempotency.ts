import { IdempotencyStore } from '@quantix/control-plane';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const HEADER = 'idempotency-key';

/**
 * `Idempotency-Key` on every write of the API scope: a client that retries a write with the same
 * key — after a timeout, a reset connection, a replica that went away — gets the first attempt's
 * answer (with `Idempotent-Replayed: true`) instead of a second write, on whichever replica the
 * retry reaches. The header is declared on each write route, so the API description (and the
 * suite generated from it) knows it.
 */
export function idempotentWrites(api: FastifyInstance, store: IdempotencyStore): void {
  const keys = new WeakMap<FastifyRequest, string>();
  const header = z
    .object({
      [HEADER]: z
        .string()
        .regex(/^[\x21-\x7e]{1,255}$/)
        .optional(),
    })
    .passthrough();

  const preHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const key = request.headers[HEADER];
    if (typeof key !== 'string' || !WRITES.has(request.method)) return;
    const started = await store.start(
      key,
      IdempotencyStore.fingerprint({ method: request.method, url: request.url, body: fingerprintBody(request.body) }),
    );
    if (started.run) {
      keys.set(request, key);
      return;
    }
    reply.status(started.status).header('idempotent-replayed', 'true');
    if (started.contentType) reply.header('content-type', started.contentType);
    return reply.send(started.body);
  };

  const onSend = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const key = keys.get(request);
    if (key === undefined) return payload;
    keys.delete(request);
    const contentType = reply.getHeader('content-type');
    await store.finish(key, {
      status: reply.statusCode,
      contentType: typeof contentType === 'string' ? contentType : null,
      body: typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '',
    });
    return payload;
  };

  // On the write routes only, ahead of their own hooks: a read pays for none of it.
  api.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.some((method) => WRITES.has(method))) return;
    route.schema ??= {};
    const schema = route.schema as { headers?: unknown };
    schema.headers ??= header;
    route.preHandler = [preHandler, ...hooksOf(route.preHandler)] as typeof route.preHandler;
    route.onSend = [onSend, ...hooksOf(route.onSend)] as typeof route.onSend;
  });
}

/** A route's own hooks of one kind, as a list. */
function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
}

/** A JSON body as sent; a streamed one (an upload's bytes) is not part of the fingerprint. */
function fingerprintBody(body: unknown): unknown {
  if (body === null || typeof body !== 'object') return body;
  if (typeof (body as { pipe?: unknown }).pipe === 'function' || Buffer.isBuffer(body)) return undefined;
  return body;
}
