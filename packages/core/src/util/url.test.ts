import { describe, expect, it } from 'vitest';
import { fileNameOfUrl } from './url.js';

describe('fileNameOfUrl', () => {
  it('is the last path segment, without query or fragment', () => {
    expect(fileNameOfUrl('https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img?x=1#y')).toBe(
      'noble-server-cloudimg-amd64.img',
    );
  });
  it('decodes escapes, and keeps a malformed escape as written', () => {
    expect(fileNameOfUrl('https://example.org/a/My%20Image.qcow2')).toBe('My Image.qcow2');
    expect(fileNameOfUrl('https://example.org/a/bad%E0%A4%A.img')).toBe('bad%E0%A4%A.img');
  });
  it('is empty for a directory URL', () => {
    expect(fileNameOfUrl(new URL('https://example.org/images/'))).toBe('');
  });
});
