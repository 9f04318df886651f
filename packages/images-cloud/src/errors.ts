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
  IMAGE_UNSAFE: {
    status: 422,
    retryable: false,
    description:
      'An image to import depends on other files (a backing file, a qcow2 external data file, VMDK extents or a descriptor naming other files); it is refused before qemu-img opens it.',
  },
  IMAGE_FORMAT_MISMATCH: {
    status: 422,
    retryable: false,
    description: 'The content of an image to import is not the format it claims (by the request or its file name).',
  },
  IMAGE_TOO_LARGE: {
    status: 422,
    retryable: false,
    description: "An image's virtual size (what it claims it expands to) is above the importer's limit.",
  },
  OVA_INVALID: {
    status: 422,
    retryable: false,
    description:
      'An OVA is unsafe or unreadable: an entry that is not a plain file in the archive (absolute path, .., link, device), a damaged tar, or a missing or malformed OVF descriptor.',
  },
  CONVERSION_FAILED: {
    status: 500,
    retryable: true,
    description:
      'Decompressing or converting an image failed on the node (qemu-img or the decompressor exited with an error, or the result did not read as the target format).',
  },
});
