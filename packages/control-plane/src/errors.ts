import { defineErrorCodes } from '@quantix/core';

/** The control plane's own codes, registered with their HTTP status in core's registry on import. */
export const ControlPlaneErrorCode = defineErrorCodes('@quantix/control-plane', {
  REPLICA_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description:
      'The node is held by another control-plane replica that did not take the request in time (dead, or cut off from the database); its nodes move to a live replica within its lease.',
  },
});
