import { defineErrorCodes } from '@quantix/core';

/**
 * The codes of the ISO reader. Importing this package registers them, with their HTTP status,
 * in core's registry. A node's scan leaves out files that fail with any but ISO_UNREADABLE.
 */
export const ImagesIsoErrorCode = defineErrorCodes('@quantix/images-iso', {
  ISO_EMPTY: {
    status: 422,
    retryable: false,
    description: 'The file is zero bytes long: nothing was ever written to it.',
  },
  ISO_TRUNCATED: {
    status: 422,
    retryable: false,
    description:
      'The file ends before the ISO it begins with: its volume descriptors, or the volume size they declare, run past its end.',
  },
  ISO_NOT_ISO9660: {
    status: 422,
    retryable: false,
    description: 'The file is not an ISO 9660 image: no `CD001` volume descriptor at sector 16.',
  },
  ISO_MALFORMED: {
    status: 422,
    retryable: false,
    description:
      'The volume descriptors are damaged: no primary descriptor, no terminator within the limit, an impossible block size.',
  },
  ISO_UNREADABLE: {
    status: 500,
    retryable: false,
    description: 'The file could not be read (permission denied, I/O error); `details.errno` says which.',
  },
});
