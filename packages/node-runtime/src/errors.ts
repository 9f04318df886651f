import { defineErrorCodes } from '@quantix/core';

/**
 * The codes of the SSH runner and the libvirt hypervisor, thrown on a node and carried to the
 * control plane unchanged. Importing this package registers them, with their HTTP status, in
 * core's registry; a control plane that drives nodes imports it for that.
 */
export const NodeRuntimeErrorCode = defineErrorCodes('@quantix/node-runtime', {
  SSH_CONNECT_FAILED: {
    status: 502,
    retryable: true,
    description:
      'The SSH connection could not be made or authenticated (refused, unreachable, key rejected); retried with backoff first.',
  },
  SSH_HOST_KEY_UNKNOWN: {
    status: 502,
    retryable: false,
    description: 'The host offered a key, none is pinned for it and trust-on-first-use was not asked for. Nothing ran.',
  },
  SSH_HOST_KEY_MISMATCH: {
    status: 502,
    retryable: false,
    description:
      "The host's key does not match the pinned fingerprint (a changed key, or another machine). Nothing ran.",
  },
  HYPERVISOR_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description: 'The hypervisor could not be reached (libvirtd down, wrong URI, virsh not installed).',
  },
  HYPERVISOR_ERROR: {
    status: 502,
    retryable: false,
    description: 'The hypervisor refused an operation for another reason; `details.stderr` has its words.',
  },
  INVALID_STATE: {
    status: 409,
    retryable: false,
    description: 'The operation is not valid in the current state (starting a running domain, stopping a stopped one).',
  },
});
