import type { Logger } from 'pino';
import type { Repositories } from '../contracts/repositories.js';
import type { EventBus } from '../events/bus.js';
import type { Database } from '../persistence/database.js';
import type { ServiceToken } from './tokens.js';

/** The plugin API this core speaks. A plugin built for another version is refused at start-up. */
export const QUANTIX_PLUGIN_API_VERSION = 1;

export interface PluginContext {
  /** The plugin being registered. */
  readonly pluginName: string;
  readonly instanceId: string;
  /** The `config` given to createQuantix, shared by all plugins. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  readonly events: EventBus;
  readonly database: Database;
  readonly repositories: Repositories;
  /**
   * Provides a service. A factory runs lazily, once, on first use, and may look up other
   * services through the context it receives. Providing a single-valued token that another
   * plugin already provides fails start-up with PLUGIN_CONFLICT.
   */
  provide<T>(token: ServiceToken<T>, provider: { value: T } | { factory: (ctx: PluginContext) => T }): void;
  /** A single-valued service; SERVICE_NOT_FOUND when nobody provides it. */
  get<T>(token: ServiceToken<T>): T;
  /** Every value provided for a token (empty when none). */
  getAll<T>(token: ServiceToken<T>): T[];
  has<T>(token: ServiceToken<T>): boolean;
  /** Runs after every plugin has registered, in plugin order. */
  onReady(hook: () => void | Promise<void>): void;
  /** Runs on close, in reverse plugin order. */
  onClose(hook: () => void | Promise<void>): void;
}

export interface QuantixPlugin {
  /** Unique across the instance, e.g. '@quantix/storage-local'. */
  readonly name: string;
  readonly apiVersion: number;
  /** Names of plugins that must be present; they register first. */
  readonly requires?: readonly string[];
  register(ctx: PluginContext): void | Promise<void>;
}

/** Declares a plugin. Identity function with types; the metadata is checked by createQuantix. */
export function definePlugin(plugin: QuantixPlugin): QuantixPlugin {
  return plugin;
}
