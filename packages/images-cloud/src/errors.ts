import { defineErrorCodes } from '@quantix/core';

/**
 * The codes only this package throws (the fetcher, on whichever process downloads). Codes a
 * download shares with the control plane (DOWNLOAD_*, CHECKSUM_MISMATCH) are core's ErrorCode.
 * Importing this package registers them, with their HTTP status, in core's registry.
 */
export const ImagesCloudErrorCode = defineErrorCodes('@quantix/images-cloud', {
  SOURCE_NOT_ALLOWED: {
    status: 400,
    retryable: false,
    description:
      'The source policy refuses a URL (scheme, host, port or resolved address), before any request is sent.',
  },
  CHECKSUM_UNAVAILABLE: {
    status: 422,
    retryable: false,
    description:
      'No expected checksum could be had: the checksum file is unreachable, malformed, or has no line for the file.',
  },
  IMAGE_INVALID: {
    status: 422,
    retryable: false,
    description: 'A downloaded file is not a usable disk image (qemu-img cannot read it, or it names a backing file).',
  },
});
