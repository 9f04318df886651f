import { fileNameOfUrl } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { assertChecksum, checksumForFile, parseChecksumFile } from './checksum.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(128);

describe('checksum files', () => {
  it('reads GNU lines in text and binary mode, and BSD lines, skipping everything else', () => {
    const text = [
      '-----BEGIN PGP SIGNED MESSAGE-----',
      'Hash: SHA256',
      '',
      `${A}  debian-12-generic-amd64.qcow2`,
      `${B} *noble-server-cloudimg-amd64.img`,
      `SHA256 (Rocky-9-GenericCloud-Base.latest.x86_64.qcow2) = ${A.toUpperCase()}`,
      `SHA512 (Fedora.qcow2) = ${C}`,
      `SHA256(openssl-style.img)= ${B}`,
      '# Fedora-Cloud-Base-Generic-42-1.1.x86_64.qcow2: 500000000 bytes',
      'not a checksum line',
      '-----BEGIN PGP SIGNATURE-----',
    ].join('\r\n');
    expect(parseChecksumFile(text)).toEqual([
      { fileName: 'debian-12-generic-amd64.qcow2', checksum: { algorithm: 'sha256', value: A } },
      { fileName: 'noble-server-cloudimg-amd64.img', checksum: { algorithm: 'sha256', value: B } },
      { fileName: 'Rocky-9-GenericCloud-Base.latest.x86_64.qcow2', checksum: { algorithm: 'sha256', value: A } },
      { fileName: 'Fedora.qcow2', checksum: { algorithm: 'sha512', value: C } },
      { fileName: 'openssl-style.img', checksum: { algorithm: 'sha256', value: B } },
    ]);
  });

  it('picks the line for the file named in the URL, whatever path the file lists it under', () => {
    const text = `${A} *./images/other.img\n${B} *./images/noble-server-cloudimg-amd64.img\n`;
    const fileName = fileNameOfUrl('https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img?x=1');
    expect(fileName).toBe('noble-server-cloudimg-amd64.img');
    expect(checksumForFile({ text, fileName })).toEqual({ algorithm: 'sha256', value: B });
  });

  it('prefers sha512 when a file is listed with both, or the algorithm asked for', () => {
    const text = `${A}  x.qcow2\n${C}  x.qcow2\n`;
    expect(checksumForFile({ text, fileName: 'x.qcow2' }).algorithm).toBe('sha512');
    expect(checksumForFile({ text, fileName: 'x.qcow2', algorithm: 'sha256' })).toEqual({
      algorithm: 'sha256',
      value: A,
    });
  });

  it('decodes escaped GNU names and URL-encoded file names', () => {
    expect(parseChecksumFile(`\\${A}  with\\\\backslash.img`)[0]?.fileName).toBe('with\\backslash.img');
    expect(fileNameOfUrl('https://example.org/a/My%20Image.qcow2')).toBe('My Image.qcow2');
  });

  it('fails with CHECKSUM_UNAVAILABLE when no line names the file, or two lines disagree', () => {
    expect(() =>
      checksumForFile({ text: `${A}  other.img`, fileName: 'x.img', source: 'https://m/SHA256SUMS' }),
    ).toThrow(expect.objectContaining({ code: 'CHECKSUM_UNAVAILABLE', message: expect.stringContaining("'x.img'") }));
    expect(() => checksumForFile({ text: `${A}  x.img\n${B}  x.img`, fileName: 'x.img' })).toThrow(
      expect.objectContaining({ code: 'CHECKSUM_UNAVAILABLE', message: expect.stringContaining('different') }),
    );
  });

  it('checks the form of a given checksum', () => {
    expect(assertChecksum({ algorithm: 'sha256', value: A.toUpperCase() })).toEqual({ algorithm: 'sha256', value: A });
    expect(() => assertChecksum({ algorithm: 'sha512', value: A })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});
