import { ControlPlaneErrorCode } from '@quantix/control-plane';
import { ErrorCode, errorCodeInfo } from '@quantix/core';
import { NodeRuntimeErrorCode } from '@quantix/node-runtime';
import { z } from 'zod';
import { statusFor } from './errors.js';

/**
 * The one shape of every error the API answers with. Its `id` makes it one component of the
 * OpenAPI document, referenced by `$ref` from every error response (zod's global registry, which
 * the swagger transform reads; see control-plane.ts).
 */
export const apiErrorSchema = z
  .object({
    error: z.object({
      code: z.string().describe('a stable code; each response lists the codes it can carry'),
      message: z.string().describe('for a person: what went wrong and what to do about it'),
      details: z.record(z.string(), z.unknown()).describe('machine-readable context, e.g. `issues` of invalid input'),
    }),
  })
  .meta({ id: 'Error', description: 'Every error the API answers with' });

/** What any route can answer, besides its own codes: bad input, a failed control plane. */
const COMMON_ERROR_CODES = [ErrorCode.INVALID_INPUT, ErrorCode.INTERNAL_ERROR, ErrorCode.DATABASE_UNAVAILABLE];

type ErrorResponses = Record<
  number,
  { description: string; content: { 'application/json': { schema: typeof apiErrorSchema } } }
>;

/**
 * The error responses of a route that needs a credential (the API token, or its own), for the
 * codes it can return plus the common ones and UNAUTHORIZED, grouped by the status each code has
 * in the error registry; each response lists its codes and what they mean.
 */
export function errorResponses(...codes: string[]): ErrorResponses {
  return describeErrors([...COMMON_ERROR_CODES, ErrorCode.UNAUTHORIZED, ...codes]);
}

/** The error responses of a public route (no credential): its codes and the common ones. */
export function publicErrorResponses(...codes: string[]): ErrorResponses {
  return describeErrors([...COMMON_ERROR_CODES, ...codes]);
}

function describeErrors(codes: string[]): ErrorResponses {
  const byStatus = new Map<number, Set<string>>();
  for (const code of codes) {
    const status = statusFor(code);
    byStatus.set(status, (byStatus.get(status) ?? new Set()).add(code));
  }
  const responses: ErrorResponses = {};
  for (const [status, statusCodes] of [...byStatus].sort(([a], [b]) => a - b)) {
    const lines = [...statusCodes].map((code) => `- \`${code}\`: ${errorCodeInfo(code)?.description ?? ''}`);
    responses[status] = {
      description: `Error codes:\n${lines.join('\n')}`,
      content: { 'application/json': { schema: apiErrorSchema } },
    };
  }
  return responses;
}

/** What a request carried to a node can fail with: none connected, a busy or slow one, the replica holding it gone. */
export const NODE_REQUEST_CODES = [
  ErrorCode.NODE_NOT_CONNECTED,
  ErrorCode.NODE_BUSY,
  ErrorCode.COMMAND_TIMEOUT,
  ControlPlaneErrorCode.REPLICA_UNAVAILABLE,
];

/** What a node's hypervisor can answer a request about a VM with. */
export const HYPERVISOR_CODES = [
  NodeRuntimeErrorCode.HYPERVISOR_UNAVAILABLE,
  NodeRuntimeErrorCode.HYPERVISOR_ERROR,
  NodeRuntimeErrorCode.INVALID_STATE,
];

/** A 204's answer: no body (the document then lists no content for it). */
export const noContent = z.undefined().describe('No content');
