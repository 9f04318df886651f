import type { ImageCatalog } from '@quantix/core';

/** One cloud-image entry whose source nobody serves (port 9): for tests that list or start, not finish, downloads. */
export const tinyCatalog: ImageCatalog = {
  name: 'test-catalog',
  list: async () => [
    {
      id: 'tiny-cloud',
      name: 'Tiny cloud image',
      description: 'a catalog entry for the API and hub tests',
      kind: 'cloud',
      format: 'qcow2',
      os: { family: 'linux', distribution: 'tiny', version: '1', arch: 'x86_64', defaultUser: 'tiny', cloudInit: true },
      requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' },
      sourceUrl: 'http://127.0.0.1:9/tiny.qcow2',
      checksum: null,
      checksumUrl: null,
      checksumAlgorithm: 'sha256',
      sizeBytes: 1024,
    },
  ],
};
