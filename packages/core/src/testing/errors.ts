import { isQuantixError } from '../errors.js';

/**
 * For tests: the stable code a promise rejects with, 'resolved' when it does not reject, or
 * 'not a QuantixError: …' for any other failure — so one `expect(...).toBe(code)` checks it all.
 */
export async function errorCodeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return isQuantixError(error) ? error.code : `not a QuantixError: ${String(error)}`;
  }
  return 'resolved';
}
