import { Token } from 'typedi';

/**
 * A typed key for a service in an instance's container. Single-valued tokens have exactly one
 * provider (a second one is a start-up error); `multiple` tokens collect one value per provider
 * (storage backends, catalogs, fetchers).
 */
export interface ServiceToken<T> {
  readonly id: string;
  readonly multiple: boolean;
  /** The typedi token underneath; internal to the kernel. */
  readonly token: Token<T>;
}

export function createServiceToken<T>(id: string, options: { multiple?: boolean } = {}): ServiceToken<T> {
  return Object.freeze({ id, multiple: options.multiple ?? false, token: new Token<T>(id) });
}
