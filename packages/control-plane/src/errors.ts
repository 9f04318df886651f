import { defineErrorCodes } from '@quantix/core';

/** The control plane's own codes, registered with their HTTP status in core's registry on import. */
export const ControlPlaneErrorCode = defineErrorCodes('@quantix/control-plane', {
  REPLICA_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description:
      'The node is held by another control-plane replica that did not take the request in time (dead, or cut off from the database); its nodes move to a live replica within its lease.',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    retryable: false,
    description: 'The Idempotency-Key was already used for a different request (another method, path or body).',
  },
  VM_BUSY: {
    status: 409,
    retryable: true,
    description: 'The VM is being created or deleted; change it once that has ended.',
  },
  IMAGE_BUSY: {
    status: 409,
    retryable: true,
    description:
      'The image is waiting for its download, being downloaded or verified, or being deleted: it belongs to that work until it ends; change it after (or cancel the download).',
  },
  UPLOAD_NO_SPACE: {
    status: 507,
    retryable: true,
    description:
      "The control plane's staging directory has no room for the upload (its announced size is more than is free there, or the disk filled while it arrived). A simple upload keeps nothing; a resumable (tus) one keeps what arrived and resumes once there is room. Free space there or stage uploads on a larger disk.",
  },
  BELOW_IMAGE_REQUIREMENTS: {
    status: 422,
    retryable: false,
    description:
      'The VM asks for less than its image needs — fewer vCPUs, less memory or a smaller disk than its requirements (a catalog entry’s, an OVA’s), a disk smaller than the image itself, or the other firmware: it would not boot. `details` has what was asked and what the image needs.',
  },
  IMAGE_NOT_BOOTABLE: {
    status: 422,
    retryable: false,
    description:
      'The ISO has no boot record (its El Torito catalog names no bootable platform): a data disc — drivers such as virtio-win, tools — that a VM can hold in its drive (POST /vms/{id}/insert) but never boot from. Make the VM from an installer ISO or a cloud image.',
  },
  IDEMPOTENCY_KEY_IN_USE: {
    status: 409,
    retryable: true,
    description: 'The first request with this Idempotency-Key is still being handled; retry when it has ended.',
  },
});
