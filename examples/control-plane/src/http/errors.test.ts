import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { errorCodeInfo } from '@quantix/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { API_ERROR_CODES, findNul, statusFor } from './errors.js';

const root = join(import.meta.dirname, '../../../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.tsx?$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((path) => !path.includes('__fixtures__'));
}

const sourceDirs = (parent: string) =>
  readdirSync(join(root, parent), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(root, parent, entry.name, 'src'));

/**
 * Every error code a source file can throw or record: any `…ErrorCode.NAME`, a string as the
 * first argument of `new QuantixError(`, and a string given as an error's `code` (`code: 'X'`,
 * `?? 'X'`). Node's errno codes on plain Errors (ENOENT, ECONNRESET) are not ours.
 */
function thrownCodes(): Map<string, string[]> {
  const patterns = [
    /\b\w*ErrorCode\.([A-Z][A-Z0-9_]+)\b/g,
    /new QuantixError\(\s*'([A-Z][A-Z0-9_]+)'/g,
    /\bcode:\s*'([A-Z][A-Z0-9_]+)'/g,
    /\.code \?\? '([A-Z][A-Z0-9_]+)'/g,
  ];
  const found = new Map<string, string[]>();
  for (const file of [...sourceDirs('packages'), ...sourceDirs('examples')].flatMap(sourceFiles)) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of patterns) {
      for (const [, code] of text.matchAll(pattern)) {
        if (!code || /^E[A-Z0-9]+$/.test(code)) continue;
        found.set(code, [...(found.get(code) ?? []), relative(root, file)]);
      }
    }
  }
  return found;
}

beforeAll(async () => {
  // Every package's index, as a process that loads them all would: each registers its codes.
  for (const dir of readdirSync(join(root, 'packages'))) {
    const { name } = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as { name: string };
    await import(name);
  }
});

describe('HTTP statuses of error codes', () => {
  it('every code the sources can throw or record is registered, with a status', () => {
    const found = thrownCodes();
    expect(found.size).toBeGreaterThan(50);
    const unregistered = [...found].filter(([code]) => errorCodeInfo(code) === undefined);
    expect(unregistered.map(([code, files]) => `${code} (${[...new Set(files)].join(', ')})`)).toEqual([]);
  });

  it('keeps the statuses the API has always answered with: 5xx only for its own failures', () => {
    expect(Object.fromEntries(Object.values(API_ERROR_CODES).map((code) => [code, statusFor(code)] as const))).toEqual({
      INVALID_INPUT: 400,
      PATH_ESCAPES_POOL: 400,
      POOL_ROOT_NOT_ALLOWED: 400,
      PROTOCOL_INVALID_MESSAGE: 400,
      PROTOCOL_VERSION: 400,
      UPLOAD_INCOMPLETE: 400,
      SOURCE_NOT_ALLOWED: 400,
      UNAUTHORIZED: 401,
      NOT_FOUND: 404,
      IMAGE_NOT_FOUND: 404,
      PLUGIN_MISSING_SERVICE: 500,
      ALREADY_EXISTS: 409,
      VERSION_CONFLICT: 409,
      IN_USE: 409,
      ILLEGAL_PHASE_TRANSITION: 409,
      IMAGE_NOT_READY: 409,
      IMAGE_NO_LOCATION: 409,
      POOL_NOT_ACTIVE_ON_NODE: 409,
      IMAGE_FILE_MISSING: 409,
      NETWORK_NOT_FOUND: 404,
      NETWORK_NOT_ACTIVE: 409,
      VM_DID_NOT_STOP: 409,
      INVALID_STATE: 409,
      DATA_DIR_LOCKED: 409,
      POOL_ROOT_OVERLAPS: 409,
      PAYLOAD_TOO_LARGE: 413,
      UPLOAD_TOO_LARGE: 413,
      UNSUPPORTED_MEDIA_TYPE: 415,
      CHECKSUM_MISMATCH: 422,
      CHECKSUM_UNAVAILABLE: 422,
      IMAGE_INVALID: 422,
      ISO_EMPTY: 422,
      ISO_TRUNCATED: 422,
      ISO_NOT_ISO9660: 422,
      ISO_MALFORMED: 422,
      INSUFFICIENT_CAPACITY: 422,
      ISO_UNREADABLE: 500,
      IMAGE_UNSAFE: 422,
      IMAGE_FILE_CHANGED: 409,
      IMAGE_NO_CHECKSUM: 409,
      IMAGE_FILE_MISMATCH: 409,
      RANGE_NOT_SATISFIABLE: 416,
      IMAGE_FORMAT_MISMATCH: 422,
      IMAGE_TOO_LARGE: 422,
      OVA_INVALID: 422,
      // qemu-img failing on an image it had read as sound: the node's own failure, retryable.
      CONVERSION_FAILED: 500,
      DATA_DIR_INSECURE: 500,
      PLUGIN_API_VERSION: 500,
      PLUGIN_MISSING_DEPENDENCY: 500,
      PLUGIN_CONFLICT: 500,
      PLUGIN_INVALID: 500,
      INSTANCE_CLOSED: 503,
      DATABASE_ERROR: 500,
      INTERNAL_ERROR: 500,
      COMMAND_FAILED: 502,
      HYPERVISOR_ERROR: 502,
      DOWNLOAD_FAILED: 502,
      POOL_MOUNT_FAILED: 502,
      SSH_CONNECT_FAILED: 502,
      SSH_HOST_KEY_UNKNOWN: 502,
      SSH_HOST_KEY_MISMATCH: 502,
      UNSUPPORTED_OPERATION: 409,
      UPLOAD_ON_OTHER_REPLICA: 409,
      CONSOLE_UNAVAILABLE: 409,
      NODE_NOT_CONNECTED: 409,
      NODE_BUSY: 503,
      POOL_UNAVAILABLE: 503,
      // The pool's disk cannot take the file: Insufficient Storage, as WebDAV has it.
      POOL_NO_SPACE: 507,
      HYPERVISOR_UNAVAILABLE: 503,
      DATABASE_UNAVAILABLE: 503,
      DOWNLOAD_CANCELLED: 409,
      DOWNLOAD_INTERRUPTED: 503,
      COMMAND_TIMEOUT: 504,
      // Codes the examples used to invent as bare strings, now registered.
      UPLOAD_FAILED: 502,
      DELETE_FAILED: 502,
    });
    expect(statusFor('NOBODY_REGISTERED_THIS')).toBe(500);
  });
});

describe('findNul', () => {
  it('names where the first NUL byte of a request is, and nothing when there is none', () => {
    const clean = { params: { id: 'a' }, query: {}, body: { items: [{ name: 'x' }], labels: { k: 'v' } } };
    expect(findNul(clean)).toBeNull();
    expect(findNul({ params: { id: 'a\u0000' }, query: {}, body: undefined })).toBe('params.id');
    expect(findNul({ params: {}, query: {}, body: { items: [{ name: 'x' }, { name: 'y\u0000' }] } })).toBe(
      'body.items[1].name',
    );
    expect(findNul({ body: { labels: Object.assign(Object.create(null), { 'a\u0000': 'b' }) } })).toBe(
      'body.labels."a\\u0000"',
    );
    expect(findNul(['ok', 'n\u0000'])).toBe('[1]');
    expect(findNul('\u0000')).toBe('(value)');
  });
});
