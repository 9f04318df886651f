import type { AvailableImage, ImageWithPath } from '@quantix/control-plane';
import { describe, expect, it } from 'vitest';
import { imageResponses } from './routes/images.js';
import { fastSerializerCompiler } from './serialize.js';

const serializer = (schema: (typeof imageResponses)[keyof typeof imageResponses]) =>
  fastSerializerCompiler({ schema, method: 'GET', url: '/test', httpStatus: '200' });

/** An image with every field set, optional ones included, and characters JSON must escape. */
const fullImage: ImageWithPath = {
  id: 'img-1',
  name: 'Ubuntu "24.04" \\ LTS\n',
  description: 'Noble – cloud image',
  labels: { channel: 'lts', 'a"b': 'c\u0001' },
  kind: 'cloud',
  format: 'qcow2',
  os: {
    family: 'linux',
    distribution: 'ubuntu',
    version: '24.04',
    arch: 'x86_64',
    defaultUser: 'ubuntu',
    cloudInit: true,
    shortId: 'ubuntu24.04',
    confidence: 'exact',
    osinfoVersion: '20221203',
  },
  requirements: { minCpu: 2, minMemoryMiB: 1024, minDiskGiB: 10, firmware: 'uefi' },
  catalogId: 'ubuntu-24.04',
  phase: 'downloading',
  progress: { bytesDone: 5, bytesTotal: 2 ** 40, percent: 0.5 },
  sizeBytes: 2 ** 53 - 1,
  virtualSizeBytes: 5 * 1024 ** 4,
  checksum: { algorithm: 'sha256', value: 'a'.repeat(64) },
  error: { code: 'DOWNLOAD_FAILED', message: 'it failed', retryable: true },
  location: { poolId: 'pool-a', relPath: 'cloud/noble.qcow2' },
  nodeId: 'node-1',
  fileModifiedAt: new Date('2026-01-02T03:04:05.678Z'),
  version: 3,
  createdAt: new Date('2026-01-01T00:00:00.001Z'),
  updatedAt: new Date('2026-01-03T00:00:00Z'),
  path: '/srv/a/cloud/noble.qcow2',
};

/** The same image with every nullable field null and the optional OS fields absent. */
const sparseImage: ImageWithPath = {
  ...fullImage,
  labels: {},
  format: null,
  os: { family: 'unknown', distribution: null, version: null, arch: null, defaultUser: null, cloudInit: false },
  catalogId: null,
  progress: null,
  sizeBytes: null,
  virtualSizeBytes: null,
  checksum: null,
  error: null,
  location: null,
  nodeId: null,
  fileModifiedAt: null,
  path: null,
};

const availableRow: AvailableImage = {
  key: 'image:img-1',
  catalogId: null,
  imageId: 'img-1',
  name: 'alpine.iso',
  kind: 'iso',
  os: fullImage.os,
  status: 'ready',
  selectable: true,
  reason: null,
  poolId: 'pool-a',
  relPath: 'iso/alpine.iso',
  path: '/srv/a/iso/alpine.iso',
  progress: null,
  error: null,
  sizeBytes: 123,
  sourceUrl: 'https://example.com/alpine.iso',
};

describe('fast serialization of the image routes', () => {
  it('writes an image exactly as JSON.stringify does, every field kept', () => {
    for (const image of [fullImage, sparseImage]) {
      expect(JSON.parse(serializer(imageResponses.imageView)(image))).toEqual(JSON.parse(JSON.stringify(image)));
    }
    const page = { images: [fullImage, sparseImage], total: 2, nextCursor: 'abc' };
    expect(serializer(imageResponses.imagePage)(page)).toBe(JSON.stringify(page));
    const last = { images: [], total: 0, nextCursor: null };
    expect(serializer(imageResponses.imagePage)(last)).toBe(JSON.stringify(last));
  });

  it('writes a page of the VM-creation view exactly as JSON.stringify does', () => {
    const notDownloaded: AvailableImage = {
      ...availableRow,
      key: 'catalog:x',
      imageId: null,
      catalogId: 'x',
      status: 'not-downloaded',
      selectable: false,
      reason: 'not downloaded',
      poolId: null,
      relPath: null,
      path: null,
      progress: { bytesDone: 1, bytesTotal: null, percent: null },
      error: { code: 'E', message: 'm', retryable: false },
      sizeBytes: null,
      sourceUrl: null,
    };
    const page = { nodeId: 'node-1', images: [availableRow, notDownloaded], total: 2 };
    expect(serializer(imageResponses.availablePage)(page)).toBe(JSON.stringify(page));
  });
});
