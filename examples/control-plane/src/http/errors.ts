import type { Duplex } from 'node:stream';
import { ErrorCode, errorCodeInfo, isDatabaseUnavailable, isQuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '@quantix/images-cloud';
import { ImagesIsoErrorCode } from '@quantix/images-iso';
import { NodeRuntimeErrorCode } from '@quantix/node-runtime';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/**
 * The codes of every package whose errors reach this API: thrown here, or thrown on a node and
 * carried back unchanged (ISO_*, SSH_*, HYPERVISOR_*, INVALID_STATE, …). Importing a package
 * registers its codes with their HTTP statuses in core's registry; naming the constants here
 * keeps those imports when this file is bundled.
 */
export const API_ERROR_CODES = {
  ...ErrorCode,
  ...ImagesCloudErrorCode,
  ...ImagesIsoErrorCode,
  ...NodeRuntimeErrorCode,
};

/**
 * The HTTP status of a code, from the registry where each package defined its codes; 500 for a
 * code nobody registered (a test fails for any code the sources can throw without one).
 *
 * 5xx means the control plane itself failed (a bug, its database, a node that answered with a
 * failure or not in time). A request that cannot be done because of the state things are in — a
 * node not connected, a node that cannot run VMs — is a 409: the client can act on it.
 */
export function statusFor(code: string): number {
  return errorCodeInfo(code)?.status ?? 500;
}

/** Fastify's own 4xx errors (bad URL, too long, wrong media type) under a stable code. */
function frameworkCode(error: FastifyError): ErrorCode {
  if (error.statusCode === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return ErrorCode.PAYLOAD_TOO_LARGE;
  if (error.statusCode === 415) return ErrorCode.UNSUPPORTED_MEDIA_TYPE;
  return ErrorCode.INVALID_INPUT;
}

/**
 * Every error leaves as `{ error: { code, message, details } }` with a code from core — those
 * of routes, of validation, and of fastify itself before routing (bad URL, parameter too long).
 * A 5xx never carries what failed inside (a statement, a stack): that goes to the log.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation.flatMap((issue) => {
      const path = [error.validationContext, ...issue.instancePath.split('/').filter((segment) => segment !== '')];
      // A field a request does not have (a typo: `nodeId` for `nodeIds`) is named where it is.
      const unknown = issue.keyword === 'unrecognized_keys' ? (issue.params as { keys?: unknown }).keys : undefined;
      if (Array.isArray(unknown) && unknown.length > 0) {
        return unknown.map((key) => ({
          path: [...path, String(key)].join('.'),
          message: 'is not a field of this request',
        }));
      }
      return [{ path: path.join('.'), message: issue.message }];
    });
    void reply.status(400).send({
      error: {
        code: ErrorCode.INVALID_INPUT,
        message: `Invalid request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        details: { issues },
      },
    });
    return;
  }
  let body: { code: string; message: string; details: Record<string, unknown> };
  let status: number;
  if (isQuantixError(error)) {
    body = error.toJSON();
    status = statusFor(error.code);
  } else if (isDatabaseUnavailable(error)) {
    body = {
      code: ErrorCode.DATABASE_UNAVAILABLE,
      message: 'The database is not reachable now; retry shortly',
      details: {},
    };
    status = statusFor(ErrorCode.DATABASE_UNAVAILABLE);
  } else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    body = { code: frameworkCode(error), message: error.message, details: {} };
    status = error.statusCode;
  } else {
    body = { code: ErrorCode.INTERNAL_ERROR, message: 'Internal error; see the control-plane log', details: {} };
    status = 500;
  }
  if (status >= 500) {
    request.log.error({ err: error, code: body.code }, 'request failed');
    if (body.code === ErrorCode.INTERNAL_ERROR || body.code === ErrorCode.DATABASE_ERROR) body.details = {};
  }
  if (status === 503) void reply.header('retry-after', '5');
  void reply.status(status).send({ error: body });
}

/**
 * Errors the HTTP parser raises before fastify sees a request (headers too large, a malformed
 * request line), answered in the same shape on the raw socket.
 */
export function handleClientError(error: NodeJS.ErrnoException & { code?: string }, socket: Duplex): void {
  if (!socket.writable) return;
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const code = status === 431 ? ErrorCode.PAYLOAD_TOO_LARGE : ErrorCode.INVALID_INPUT;
  const message =
    status === 431 ? 'Request headers are too large' : status === 408 ? 'Request timed out' : 'Malformed HTTP request';
  const body = JSON.stringify({ error: { code, message, details: {} } });
  socket.end(
    `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The first string in a request's parameters, query or body that holds a NUL byte, as a path. */
export function findNul(value: unknown): string | null {
  const found = nulPath(value);
  return found === null ? null : found.replace(/^\./, '') || '(value)';
}

/**
 * Where a NUL byte is under `value` ('' for the value itself, else '.key' / '[i]' segments), or
 * null. Runs on every request, so nothing is allocated unless one is found: no entry arrays, and
 * a path is only built on the way back from a hit.
 */
function nulPath(value: unknown): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? '' : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulPath(value[i]);
      if (found !== null) return `[${i}]${found}`;
    }
    return null;
  }
  // Parsed objects (some with a null prototype); an upload's body is a stream and is not read here.
  if (value && typeof value === 'object' && typeof (value as { pipe?: unknown }).pipe !== 'function') {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      if (key.includes('\u0000')) return `.${JSON.stringify(key)}`;
      const found = nulPath((value as Record<string, unknown>)[key]);
      if (found !== null) return `.${key}${found}`;
    }
  }
  return null;
}
