import type { Logger } from 'pino';
import type { Repositories } from '../contracts/repositories.js';
import type { EventBus } from '../events/bus.js';
import type { Database } from '../persistence/database.js';
import type { AnyServiceToken, MultiServiceToken, ServiceToken } from './tokens.js';

/**
 * The plugin API this core provides, a semver version. A plugin states the range it was written
 * against (`apiVersion: '^1.0.0'`); one whose range this version does not satisfy is refused at
 * start-up with PLUGIN_API_VERSION. 1.1: `needs`/`optional`, single and multi tokens as types,
 * `createQuantix({ database: false })`.
 */
export const QUANTIX_PLUGIN_API_VERSION = '1.1.0';

export type ServiceProvider<T> = { value: T } | { factory: (ctx: PluginContext) => T };

export interface PluginContext {
  /** The plugin being registered. */
  readonly pluginName: string;
  readonly instanceId: string;
  /** The `config` given to createQuantix, shared by all plugins. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  readonly events: EventBus;
  /**
   * The instance's database: `get(DatabaseToken)`. On a node (`database: false`) it throws
   * PLUGIN_MISSING_SERVICE; a plugin that needs it says so in `needs`.
   */
  readonly database: Database;
  /** The repositories: `get(RepositoriesToken)`, absent on a node like `database`. */
  readonly repositories: Repositories;
  /**
   * Provides a service. A factory runs lazily, once, on first use, and may look up other
   * services through the context it receives. Providing a single-valued token that another
   * plugin already provides fails start-up with PLUGIN_CONFLICT.
   */
  provide<T>(token: ServiceToken<T> | MultiServiceToken<T>, provider: ServiceProvider<T>): void;
  /** The provider of a single-valued service; PLUGIN_MISSING_SERVICE when nobody provides it. */
  get<T>(token: ServiceToken<T>): T;
  /** Every value provided for a multi-valued token (empty when none). */
  getAll<T>(token: MultiServiceToken<T>): T[];
  has(token: AnyServiceToken): boolean;
  /** Runs after every plugin has registered and every `needs` was found, in plugin order. */
  onReady(hook: () => void | Promise<void>): void;
  /** Runs on close, in reverse plugin order. */
  onClose(hook: () => void | Promise<void>): void;
}

export interface QuantixPlugin {
  /** Unique across the instance, e.g. '@quantix/storage-local'. */
  readonly name: string;
  /**
   * The plugin API versions this plugin works with, a semver range ('^1.0.0'). A number n, as
   * plugins written for API 1.0 give, means '^n.0.0'.
   */
  readonly apiVersion: string | number;
  /** Names of plugins that must be present; they register first. */
  readonly requires?: readonly string[];
  /**
   * Services this plugin uses and cannot work without (a multi-valued token: at least one
   * provider). createQuantix checks them after every plugin registered and before any ready
   * hook, and fails with PLUGIN_MISSING_SERVICE naming the plugin and the token.
   */
  readonly needs?: readonly AnyServiceToken[];
  /** Single-valued services this plugin uses when present (it asks `ctx.has()` first). */
  readonly optional?: readonly AnyServiceToken[];
  register(ctx: PluginContext): void | Promise<void>;
}

/**
 * Declares a plugin. Identity function with types; the metadata is checked by createQuantix.
 *
 * A plugin that declares `needs` or `optional` gets only what it declared (and what it provides
 * itself) from `ctx.get()`: anything else is PLUGIN_INVALID at the first get, so a declaration
 * cannot fall behind the code. A plugin that declares neither is not checked (API 1.0).
 */
export function definePlugin(plugin: QuantixPlugin): QuantixPlugin {
  return plugin;
}
