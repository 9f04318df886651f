import { ErrorCode } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { normalizeFingerprint, publicKeyFingerprint } from './fingerprint.js';

// A fixed ed25519 public key and the fingerprint `ssh-keygen -lf` printed for it.
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPPQNAluafk1kgslOYLx6UGtMCWRPwyyCISxHyzri6ti quantix-fixture';
const FINGERPRINT = 'SHA256:+xRqzgFO4ow434U8YzIfUwVa+I/WRB+TxYJwTynCmBE';

describe('SSH host key fingerprints', () => {
  it('computes the SHA-256 fingerprint the way ssh-keygen -lf prints it', () => {
    expect(publicKeyFingerprint(PUBLIC_KEY)).toBe(FINGERPRINT);
  });

  it('accepts a pinned fingerprint with or without prefix and padding, in one spelling', () => {
    expect(normalizeFingerprint(FINGERPRINT)).toBe(FINGERPRINT);
    expect(normalizeFingerprint(FINGERPRINT.slice('SHA256:'.length))).toBe(FINGERPRINT);
    expect(normalizeFingerprint(` ${FINGERPRINT}= `)).toBe(FINGERPRINT);
  });

  it('refuses what is not a SHA-256 fingerprint (MD5, truncated, garbage)', () => {
    for (const bad of ['MD5:9f:2c:aa', `${FINGERPRINT.slice(0, 20)}`, 'SHA256:not base64!', '']) {
      expect(() => normalizeFingerprint(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
    }
    expect(() => publicKeyFingerprint('not a key')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
  });
});
