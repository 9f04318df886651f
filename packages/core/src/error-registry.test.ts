import { describe, expect, it } from 'vitest';
import { defineErrorCodes, errorCodeInfo, listErrorCodes } from './error-registry.js';
import { ErrorCode, isQuantixError, isRetryableError, QuantixError } from './errors.js';

describe('the error code registry', () => {
  it('holds every core code with its owner, an HTTP status and a retryable flag', () => {
    for (const code of Object.values(ErrorCode)) {
      const info = errorCodeInfo(code);
      expect(info, code).toMatchObject({ code, owner: '@quantix/core' });
      expect(info?.status, code).toBeGreaterThanOrEqual(400);
      expect(info?.description, code).not.toBe('');
    }
    expect(errorCodeInfo('NODE_NOT_CONNECTED')).toMatchObject({ status: 409, retryable: true });
    expect(errorCodeInfo('NO_SUCH_CODE')).toBeUndefined();
  });

  it('returns typed constants for the codes a package defines, and lists them', () => {
    const TestCode = defineErrorCodes('@test/registry', {
      TEST_REGISTRY_GONE: { status: 410, retryable: false, description: 'It went away.' },
    });
    expect(TestCode.TEST_REGISTRY_GONE).toBe('TEST_REGISTRY_GONE');
    expect(Object.isFrozen(TestCode)).toBe(true);
    const error = new QuantixError(TestCode.TEST_REGISTRY_GONE, 'gone');
    expect(isQuantixError(error, 'TEST_REGISTRY_GONE')).toBe(true);
    expect(listErrorCodes().find((c) => c.code === 'TEST_REGISTRY_GONE')).toEqual({
      code: 'TEST_REGISTRY_GONE',
      owner: '@test/registry',
      status: 410,
      retryable: false,
      description: 'It went away.',
    });
    // @ts-expect-error only registered codes make a QuantixError
    expect(new QuantixError('MADE_UP', 'x').code).toBe('MADE_UP');
  });

  it('lives on globalThis under Symbol.for, so that every copy of core in the process shares it', () => {
    defineErrorCodes('@test/registry', {
      TEST_REGISTRY_SHARED: { status: 409, retryable: true, description: 'Shared.' },
    });
    const shared = (globalThis as Record<symbol, unknown>)[Symbol.for('quantix.error-codes')] as Map<string, unknown>;
    expect(shared.get('TEST_REGISTRY_SHARED')).toMatchObject({ status: 409, retryable: true });
  });

  it('takes the same definition twice (a second copy of a package) and refuses a different one, naming both', () => {
    const spec = { TEST_REGISTRY_TWICE: { status: 422, retryable: false, description: 'Twice.' } };
    defineErrorCodes('@test/one', spec);
    expect(defineErrorCodes('@test/one', spec).TEST_REGISTRY_TWICE).toBe('TEST_REGISTRY_TWICE');
    expect(() =>
      defineErrorCodes('@test/two', {
        TEST_REGISTRY_TWICE: { status: 500, retryable: false, description: 'Twice, differently.' },
      }),
    ).toThrow(
      "Error code 'TEST_REGISTRY_TWICE' is defined by @test/one (status 422, retryable false) and again by @test/two (status 500, retryable false)",
    );
    expect(() =>
      defineErrorCodes('@test/one', { TEST_REGISTRY_TWICE: { status: 422, retryable: true, description: 'Newer.' } }),
    ).toThrow(/two different versions of that package are loaded/);
    expect(() =>
      defineErrorCodes('@quantix/other', { NOT_FOUND: { status: 500, retryable: false, description: 'Mine.' } }),
    ).toThrow(/'NOT_FOUND' is defined by @quantix\/core/);
  });

  it('refuses codes that are not UPPER_SNAKE_CASE and statuses that are no failure', () => {
    expect(() => defineErrorCodes('@test/bad', { lower: { status: 400, retryable: false, description: '' } })).toThrow(
      /not UPPER_SNAKE_CASE/,
    );
    expect(() =>
      defineErrorCodes('@test/bad', { TEST_REGISTRY_OK: { status: 200, retryable: false, description: '' } }),
    ).toThrow(/status 200/);
  });
});

describe('isRetryableError', () => {
  it("takes the error's own details.retryable first, then its code's flag", () => {
    const cut = new QuantixError(ErrorCode.DOWNLOAD_FAILED, 'reset', { details: { retryable: true } });
    const gone = new QuantixError(ErrorCode.DOWNLOAD_FAILED, '404', { details: { retryable: false } });
    expect([isRetryableError(cut), isRetryableError(gone)]).toEqual([true, false]);
    expect(isRetryableError(new QuantixError(ErrorCode.NODE_NOT_CONNECTED, 'away'))).toBe(true);
    expect(isRetryableError(new QuantixError(ErrorCode.INVALID_INPUT, 'bad'))).toBe(false);
    expect(isRetryableError(new Error('plain'))).toBe(false);
  });
});
