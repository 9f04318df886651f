import { describe, expect, it } from 'vitest';
import { tusRetriable } from '../src/index.js';

describe('tusRetriable', () => {
  it('retries no answer, server failures and tus’s own plain-text 409/423', () => {
    expect(tusRetriable(null, '')).toBe(true);
    expect(tusRetriable(502, '')).toBe(true);
    expect(tusRetriable(409, 'Upload-Offset conflict\n')).toBe(true);
    expect(tusRetriable(423, 'file currently locked\n')).toBe(true);
  });

  it('does not retry the API’s own refusals', () => {
    expect(tusRetriable(409, '{"error":{"code":"ALREADY_EXISTS","message":"x","details":{}}}')).toBe(false);
    expect(tusRetriable(422, '{"error":{"code":"CHECKSUM_MISMATCH"}}')).toBe(false);
    expect(tusRetriable(413, '')).toBe(false);
    expect(tusRetriable(401, '')).toBe(false);
    // No room, for the staging directory or the pool: trying again at once cannot help.
    expect(tusRetriable(507, '{"error":{"code":"POOL_NO_SPACE","message":"x","details":{}}}')).toBe(false);
    expect(tusRetriable(507, '{"error":{"code":"UPLOAD_NO_SPACE","message":"x","details":{}}}')).toBe(false);
  });
});
