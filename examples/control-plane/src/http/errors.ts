import type { Duplex } from 'node:stream';
import { ErrorCode, isDatabaseUnavailable, isQuantixError } from '@quantix/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/**
 * HTTP status for every stable error code. A `Record` over ErrorCode: a code added to core
 * without a status here fails the typecheck, so nothing falls back to 500 by omission.
 *
 * 5xx means the control plane itself failed (a bug, its database, a node that answered with a
 * failure or not in time). A request that cannot be done because of the state things are in — a
 * node not connected, a node that cannot run VMs — is a 409: the client can act on it.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  [ErrorCode.INVALID_INPUT]: 400,
  [ErrorCode.PATH_ESCAPES_POOL]: 400,
  [ErrorCode.POOL_ROOT_NOT_ALLOWED]: 400,
  [ErrorCode.PROTOCOL_INVALID_MESSAGE]: 400,
  [ErrorCode.PROTOCOL_VERSION]: 400,
  [ErrorCode.UPLOAD_INCOMPLETE]: 400,
  [ErrorCode.SOURCE_NOT_ALLOWED]: 400,
  [ErrorCode.UNAUTHORIZED]: 401,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.IMAGE_NOT_FOUND]: 404,
  [ErrorCode.SERVICE_NOT_FOUND]: 500,
  [ErrorCode.ALREADY_EXISTS]: 409,
  [ErrorCode.VERSION_CONFLICT]: 409,
  [ErrorCode.IN_USE]: 409,
  [ErrorCode.ILLEGAL_PHASE_TRANSITION]: 409,
  [ErrorCode.IMAGE_NOT_READY]: 409,
  [ErrorCode.IMAGE_NO_LOCATION]: 409,
  [ErrorCode.POOL_NOT_ACTIVE_ON_NODE]: 409,
  [ErrorCode.IMAGE_FILE_MISSING]: 409,
  [ErrorCode.INVALID_STATE]: 409,
  [ErrorCode.DATA_DIR_LOCKED]: 409,
  [ErrorCode.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCode.UPLOAD_TOO_LARGE]: 413,
  [ErrorCode.UNSUPPORTED_MEDIA_TYPE]: 415,
  [ErrorCode.CHECKSUM_MISMATCH]: 422,
  [ErrorCode.CHECKSUM_UNAVAILABLE]: 422,
  [ErrorCode.IMAGE_INVALID]: 422,
  [ErrorCode.ISO_EMPTY]: 422,
  [ErrorCode.ISO_TRUNCATED]: 422,
  [ErrorCode.ISO_NOT_ISO9660]: 422,
  [ErrorCode.ISO_MALFORMED]: 422,
  [ErrorCode.INSUFFICIENT_CAPACITY]: 422,
  [ErrorCode.ISO_UNREADABLE]: 500,
  [ErrorCode.DATA_DIR_INSECURE]: 500,
  [ErrorCode.PLUGIN_API_VERSION]: 500,
  [ErrorCode.PLUGIN_MISSING_DEPENDENCY]: 500,
  [ErrorCode.PLUGIN_CONFLICT]: 500,
  [ErrorCode.PLUGIN_INVALID]: 500,
  [ErrorCode.INSTANCE_CLOSED]: 503,
  [ErrorCode.DATABASE_ERROR]: 500,
  [ErrorCode.INTERNAL_ERROR]: 500,
  [ErrorCode.COMMAND_FAILED]: 502,
  [ErrorCode.HYPERVISOR_ERROR]: 502,
  [ErrorCode.DOWNLOAD_FAILED]: 502,
  [ErrorCode.POOL_MOUNT_FAILED]: 502,
  [ErrorCode.SSH_CONNECT_FAILED]: 502,
  [ErrorCode.SSH_HOST_KEY_UNKNOWN]: 502,
  [ErrorCode.SSH_HOST_KEY_MISMATCH]: 502,
  [ErrorCode.UNSUPPORTED_OPERATION]: 409,
  [ErrorCode.NODE_NOT_CONNECTED]: 409,
  [ErrorCode.NODE_BUSY]: 503,
  [ErrorCode.POOL_UNAVAILABLE]: 503,
  [ErrorCode.HYPERVISOR_UNAVAILABLE]: 503,
  [ErrorCode.DATABASE_UNAVAILABLE]: 503,
  [ErrorCode.DOWNLOAD_CANCELLED]: 409,
  [ErrorCode.DOWNLOAD_INTERRUPTED]: 503,
  [ErrorCode.COMMAND_TIMEOUT]: 504,
};

export function statusFor(code: string): number {
  return HTTP_STATUS[code as ErrorCode] ?? 500;
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
    const issues = error.validation.map((issue) => ({
      path: [error.validationContext, ...(issue.instancePath ? issue.instancePath.slice(1).split('/') : [])].join('.'),
      message: issue.message,
    }));
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
export function findNul(value: unknown, path = ''): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path || '(value)' : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNul(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  // Parsed objects (some with a null prototype); an upload's body is a stream and is not read here.
  if (value && typeof value === 'object' && typeof (value as { pipe?: unknown }).pipe !== 'function') {
    for (const [key, inner] of Object.entries(value)) {
      if (key.includes('\u0000')) return `${path}.${JSON.stringify(key)}`;
      const found = findNul(inner, path ? `${path}.${key}` : key);
      if (found) return found;
    }
  }
  return null;
}
