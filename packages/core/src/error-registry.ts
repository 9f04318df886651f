/**
 * The one registry of error codes. Every package defines the codes it throws here, each with the
 * HTTP status a caller should see and whether trying again later can help; the HTTP layer, the
 * CLI and the download lifecycle look codes up instead of keeping maps of their own.
 */

/**
 * An error code string that was defined with defineErrorCodes, so that a QuantixError made with
 * a bare string literal does not compile. The brand exists for the type checker only, under a string key so that the
 * codes of two copies of core's declarations fit each other.
 */
export type QuantixErrorCode<Code extends string = string> = Code & { readonly __quantixErrorCode: true };

export interface ErrorCodeSpec {
  /** The HTTP status for an API answer with this code: 4xx for the caller's request or the state of things, 5xx only when Quantix itself failed. */
  readonly status: number;
  /** Whether the same request can succeed later without anyone changing it (a node reconnects, a server answers again). */
  readonly retryable: boolean;
  /** One line: what happened. */
  readonly description: string;
}

export interface RegisteredErrorCode extends ErrorCodeSpec {
  readonly code: string;
  /** The package that defined it, e.g. '@quantix/images-iso'. */
  readonly owner: string;
}

type Registry = Map<string, RegisteredErrorCode>;

// On globalThis under a Symbol.for key, not in a module variable: two copies of @quantix/core in
// one process (an ESM app and a CJS plugin, or a nested install) must see one set of codes, or
// a code a plugin registered with its copy would have no status for the HTTP layer's copy.
const REGISTRY = Symbol.for('quantix.error-codes');

function registry(): Registry {
  const holder = globalThis as { [REGISTRY]?: Registry };
  holder[REGISTRY] ??= new Map();
  return holder[REGISTRY];
}

const CODE_PATTERN = /^[A-Z][A-Z0-9_]*$/;

/**
 * Registers a package's error codes and returns them as constants:
 * `export const IsoErrorCode = defineErrorCodes('@quantix/images-iso', { ISO_EMPTY: { status: 422, retryable: false, description: '…' } })`
 * then `new QuantixError(IsoErrorCode.ISO_EMPTY, …)`.
 *
 * Defining a code again with the same status and retryable flag is allowed (a second copy of the
 * same package); with different ones it throws, naming both definitions, when the module loads.
 */
export function defineErrorCodes<const Specs extends Record<string, ErrorCodeSpec>>(
  owner: string,
  specs: Specs,
): { readonly [Code in keyof Specs & string]: QuantixErrorCode<Code> } {
  const codes = registry();
  const constants: Record<string, string> = {};
  for (const [code, spec] of Object.entries(specs)) {
    if (!CODE_PATTERN.test(code)) throw new Error(`Error code '${code}' of ${owner} is not UPPER_SNAKE_CASE`);
    if (!Number.isInteger(spec.status) || spec.status < 400 || spec.status > 599) {
      throw new Error(`Error code '${code}' of ${owner} has status ${spec.status}; a failure is a 4xx or 5xx`);
    }
    const existing = codes.get(code);
    if (existing && (existing.status !== spec.status || existing.retryable !== spec.retryable)) {
      throw new Error(
        `Error code '${code}' is defined by ${existing.owner} (status ${existing.status}, retryable ${existing.retryable}) ` +
          `and again by ${owner} (status ${spec.status}, retryable ${spec.retryable})` +
          (existing.owner === owner ? ': two different versions of that package are loaded' : ''),
      );
    }
    if (!existing) {
      codes.set(
        code,
        Object.freeze({ code, owner, status: spec.status, retryable: spec.retryable, description: spec.description }),
      );
    }
    constants[code] = code;
  }
  return Object.freeze(constants) as { readonly [Code in keyof Specs & string]: QuantixErrorCode<Code> };
}

/** What the registry knows about a code; undefined for a code nobody defined (in this process). */
export function errorCodeInfo(code: string): RegisteredErrorCode | undefined {
  return registry().get(code);
}

/** Every registered code, in registration order. */
export function listErrorCodes(): RegisteredErrorCode[] {
  return [...registry().values()];
}
