import { ErrorCode, isQuantixError } from '@quantix/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/** HTTP status for each stable error code; anything unlisted is a 500. */
const STATUS: Partial<Record<string, number>> = {
  [ErrorCode.INVALID_INPUT]: 400,
  [ErrorCode.PATH_ESCAPES_POOL]: 400,
  [ErrorCode.PROTOCOL_INVALID_MESSAGE]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.IMAGE_NOT_FOUND]: 404,
  [ErrorCode.ALREADY_EXISTS]: 409,
  [ErrorCode.VERSION_CONFLICT]: 409,
  [ErrorCode.IN_USE]: 409,
  [ErrorCode.ILLEGAL_PHASE_TRANSITION]: 409,
  [ErrorCode.IMAGE_NOT_READY]: 409,
  [ErrorCode.IMAGE_NO_LOCATION]: 409,
  [ErrorCode.POOL_NOT_ACTIVE_ON_NODE]: 409,
  [ErrorCode.IMAGE_FILE_MISSING]: 409,
  [ErrorCode.UNSUPPORTED_OPERATION]: 501,
  [ErrorCode.NODE_NOT_CONNECTED]: 503,
  [ErrorCode.POOL_UNAVAILABLE]: 503,
  [ErrorCode.DATABASE_UNAVAILABLE]: 503,
  [ErrorCode.COMMAND_TIMEOUT]: 504,
  [ErrorCode.UPLOAD_TOO_LARGE]: 413,
  [ErrorCode.UPLOAD_INCOMPLETE]: 400,
  [ErrorCode.SOURCE_NOT_ALLOWED]: 400,
  [ErrorCode.CHECKSUM_MISMATCH]: 422,
  UNAUTHORIZED: 401,
  PAYLOAD_TOO_LARGE: 413,
};

export function statusFor(code: string): number {
  return STATUS[code] ?? 500;
}

/** Every error leaves as `{ error: { code, message, details } }` with the code from core. */
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
  if (isQuantixError(error)) {
    void reply.status(statusFor(error.code)).send({ error: error.toJSON() });
    return;
  }
  if (error.statusCode === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    void reply.status(413).send({ error: { code: 'PAYLOAD_TOO_LARGE', message: error.message, details: {} } });
    return;
  }
  if (error.statusCode && error.statusCode < 500) {
    void reply
      .status(error.statusCode)
      .send({ error: { code: ErrorCode.INVALID_INPUT, message: error.message, details: {} } });
    return;
  }
  request.log.error({ err: error }, 'unhandled error');
  void reply
    .status(500)
    .send({ error: { code: 'INTERNAL', message: 'Internal error; see the control-plane log', details: {} } });
}
