import { ErrorCode, isQuantixError } from '@quantix/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/**
 * HTTP status for every stable error code. A `Record` over ErrorCode: a code added to core
 * without a status here fails the typecheck, so nothing falls back to 500 by omission.
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
  [ErrorCode.UNSUPPORTED_OPERATION]: 501,
  [ErrorCode.NODE_NOT_CONNECTED]: 503,
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
    void reply.status(413).send({ error: { code: ErrorCode.PAYLOAD_TOO_LARGE, message: error.message, details: {} } });
    return;
  }
  if (error.statusCode && error.statusCode < 500) {
    void reply
      .status(error.statusCode)
      .send({ error: { code: ErrorCode.INVALID_INPUT, message: error.message, details: {} } });
    return;
  }
  request.log.error({ err: error }, 'unhandled error');
  void reply.status(500).send({
    error: { code: ErrorCode.INTERNAL_ERROR, message: 'Internal error; see the control-plane log', details: {} },
  });
}
