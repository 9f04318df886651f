/**
 * A typed key for a single-valued service: exactly one provider (a second one fails start-up
 * with PLUGIN_CONFLICT), read with `get()`. Hypervisor, command runner, the database.
 *
 * A token is its id and its kind, nothing else: two tokens with the same id are the same token,
 * even from two copies of @quantix/core loaded in one process (see createQuantix).
 */
export interface ServiceToken<T> {
  readonly id: string;
  readonly multiple: false;
  /** Carries T for the type checker; never set. Named by a string, not a unique symbol, so that
   * the tokens of two copies of core's declarations still fit each other's functions. */
  readonly __service?: T;
}

/** A typed key for a multi-valued service: one value per provider, read with `getAll()` (storage backends, catalogs, fetchers). */
export interface MultiServiceToken<T> {
  readonly id: string;
  readonly multiple: true;
  /** Carries T for the type checker; never set. */
  readonly __service?: T;
}

export type AnyServiceToken = ServiceToken<unknown> | MultiServiceToken<unknown>;

export function createServiceToken<T>(id: string): ServiceToken<T> {
  return Object.freeze({ id, multiple: false });
}

export function createMultiServiceToken<T>(id: string): MultiServiceToken<T> {
  return Object.freeze({ id, multiple: true });
}

/** Whether a value is a token, from this copy of core or another one. */
export function isServiceToken(value: unknown): value is AnyServiceToken {
  const token = value as { id?: unknown; multiple?: unknown } | null;
  return (
    typeof token === 'object' &&
    token !== null &&
    typeof token.id === 'string' &&
    token.id !== '' &&
    typeof token.multiple === 'boolean'
  );
}
