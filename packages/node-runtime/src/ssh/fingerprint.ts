import { createHash } from 'node:crypto';
import { ErrorCode, QuantixError } from '@quantix/core';

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/**
 * The SHA-256 fingerprint of an SSH public key blob (the key in SSH wire format, as a server
 * sends it), written the way `ssh-keygen -lf` prints it: `SHA256:` and unpadded base64.
 */
export function sshKeyFingerprint(keyBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`, a `.pub` file). */
export function publicKeyFingerprint(publicKeyLine: string): string {
  const [type, encoded] = publicKeyLine.trim().split(/\s+/);
  const blob = encoded && /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ? Buffer.from(encoded, 'base64') : null;
  // The blob starts with its own key type, length-prefixed: a cheap proof that this is a key.
  if (!type || !blob || blob.length < 4 || blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1') !== type) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'Not an OpenSSH public key line (type, base64 key, comment)');
  }
  return sshKeyFingerprint(blob);
}

/**
 * A pinned fingerprint in its one spelling. Accepts what `ssh-keygen -lf` prints, with or without
 * the `SHA256:` prefix and base64 padding; refuses anything else (an MD5 fingerprint, a typo) with
 * INVALID_INPUT rather than failing every later connection with a mismatch.
 */
export function normalizeFingerprint(fingerprint: string): string {
  const trimmed = String(fingerprint).trim().replace(/=+$/, '');
  const spelled = trimmed.startsWith('SHA256:') ? trimmed : `SHA256:${trimmed}`;
  if (!FINGERPRINT.test(spelled)) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Host key fingerprint ${JSON.stringify(fingerprint)} is not a SHA-256 fingerprint as \`ssh-keygen -lf\` prints it (SHA256:<43 base64 characters>)`,
      { details: { fingerprint } },
    );
  }
  return spelled;
}
