import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import semver from 'semver';
import { Container } from 'typedi';
import type { Repositories } from '../contracts/repositories.js';
import { ErrorCode, isQuantixError, QuantixError } from '../errors.js';
import { createEventBus, type EventBus } from '../events/bus.js';
import { createLogger } from '../logging.js';
import { type Database, type DatabaseConfig, openDatabase } from '../persistence/database.js';
import { createRepositories } from '../persistence/repositories/index.js';
import { DatabaseToken, RepositoriesToken } from './core-tokens.js';
import { type PluginContext, QUANTIX_PLUGIN_API_VERSION, type QuantixPlugin, type ServiceProvider } from './plugin.js';
import { type AnyServiceToken, isServiceToken, type MultiServiceToken, type ServiceToken } from './tokens.js';

/** Where the embedded database lives when no database is configured. */
export const DEFAULT_DATA_DIR = '.quantix/db';

/** The provider named for services the kernel provides itself (the database, the repositories). */
const KERNEL = '@quantix/core';

export interface CreateQuantixOptions {
  /**
   * Default: PGlite in `./.quantix/db`. Give `{ client: 'pglite' }` for an in-memory database,
   * or `false` for a node, which keeps no database: the instance then has no `database` or
   * `repositories`, and a plugin that needs them fails start-up.
   */
  database?: DatabaseConfig | false;
  plugins?: readonly QuantixPlugin[];
  config?: Record<string, unknown>;
  /** Default: pino at level 'warn' (or QUANTIX_LOG_LEVEL). */
  logger?: Logger;
}

/** An instance without a database: what `createQuantix({ database: false })` builds for a node. */
export interface QuantixNode {
  readonly id: string;
  readonly events: EventBus;
  readonly logger: Logger;
  /** Registered plugin names, in registration order. */
  readonly plugins: readonly string[];
  /** The provider of a single-valued service; PLUGIN_MISSING_SERVICE when nobody provides it. */
  get<T>(token: ServiceToken<T>): T;
  /** Every value provided for a multi-valued token, in plugin order (empty when none). */
  getAll<T>(token: MultiServiceToken<T>): T[];
  has(token: AnyServiceToken): boolean;
  /** Runs close hooks (reverse order), closes the database and drops the container. Idempotent. */
  close(): Promise<void>;
}

/** An instance with its database: a control plane, or an all-in-one process. */
export interface Quantix extends QuantixNode {
  readonly database: Database;
  readonly repositories: Repositories;
}

function pluginError(code: ErrorCode, plugin: string, message: string, cause?: unknown): QuantixError {
  return new QuantixError(code, `Plugin '${plugin}': ${message}`, { details: { plugin }, cause });
}

function describe(plugin: unknown): string {
  const name = (plugin as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name !== '' ? name : '(unnamed)';
}

/** A plugin's apiVersion as a semver range: the number n of API 1.0 plugins is '^n.0.0'. */
function apiRange(apiVersion: unknown): string | null {
  if (typeof apiVersion === 'number' && Number.isInteger(apiVersion) && apiVersion >= 0) return `^${apiVersion}.0.0`;
  if (typeof apiVersion === 'string') return semver.validRange(apiVersion) === null ? null : apiVersion;
  return null;
}

function checkMetadata(plugin: QuantixPlugin): void {
  const name = describe(plugin);
  if (typeof plugin?.name !== 'string' || plugin.name === '') {
    throw pluginError(ErrorCode.PLUGIN_INVALID, name, 'has no name');
  }
  if (typeof plugin.register !== 'function') {
    throw pluginError(ErrorCode.PLUGIN_INVALID, name, 'has no register(ctx) function');
  }
  const range = apiRange(plugin.apiVersion);
  if (range === null) {
    throw pluginError(
      ErrorCode.PLUGIN_INVALID,
      name,
      `apiVersion ${JSON.stringify(plugin.apiVersion)} is not a semver range (e.g. '^1.0.0')`,
    );
  }
  if (!semver.satisfies(QUANTIX_PLUGIN_API_VERSION, range)) {
    const asked = typeof plugin.apiVersion === 'number' ? `${plugin.apiVersion} (${range})` : range;
    throw pluginError(
      ErrorCode.PLUGIN_API_VERSION,
      name,
      `targets plugin API version ${asked}, but this @quantix/core provides plugin API version ${QUANTIX_PLUGIN_API_VERSION}`,
    );
  }
  for (const field of ['needs', 'optional'] as const) {
    const tokens = plugin[field];
    if (tokens === undefined) continue;
    if (!Array.isArray(tokens) || !tokens.every(isServiceToken)) {
      throw pluginError(ErrorCode.PLUGIN_INVALID, name, `${field} must be a list of service tokens`);
    }
  }
}

/**
 * Checks plugin metadata the way fastify checks its plugins at registration, and returns the
 * plugins ordered so that every plugin comes after the plugins it requires.
 */
export function orderPlugins(plugins: readonly QuantixPlugin[]): QuantixPlugin[] {
  const byName = new Map<string, QuantixPlugin>();
  for (const plugin of plugins) {
    checkMetadata(plugin);
    if (byName.has(plugin.name)) throw pluginError(ErrorCode.PLUGIN_CONFLICT, plugin.name, 'is given twice');
    byName.set(plugin.name, plugin);
  }
  for (const plugin of plugins) {
    for (const required of plugin.requires ?? []) {
      if (!byName.has(required)) {
        throw pluginError(
          ErrorCode.PLUGIN_MISSING_DEPENDENCY,
          plugin.name,
          `requires plugin '${required}', which was not given to createQuantix`,
        );
      }
    }
  }
  const ordered: QuantixPlugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (plugin: QuantixPlugin, path: string[]) => {
    const seen = state.get(plugin.name);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      throw pluginError(
        ErrorCode.PLUGIN_INVALID,
        plugin.name,
        `requires itself through ${[...path, plugin.name].join(' → ')}`,
      );
    }
    state.set(plugin.name, 'visiting');
    for (const required of plugin.requires ?? []) visit(byName.get(required) as QuantixPlugin, [...path, plugin.name]);
    state.set(plugin.name, 'done');
    ordered.push(plugin);
  };
  for (const plugin of plugins) visit(plugin, []);
  return ordered;
}

/**
 * One provided value, resolved on first use. typedi holds these as plain values, never as
 * factories: typedi's reset calls a method named destroy() on every factory-made service, with
 * no arguments (a Hypervisor's destroy() would be asked to stop a domain). Services end through
 * onClose hooks only.
 */
interface Provided {
  resolve(): unknown;
}

/**
 * Builds an isolated Quantix instance: its own database connection (none for a node), typedi
 * container, event bus and logger. Start-up fails fast, naming the plugin, on any plugin
 * problem; whatever was opened by then is closed again.
 *
 * Tokens are looked up by their string id, so a plugin that was handed another copy of
 * @quantix/core (an ESM app with a CJS plugin, a nested install) still finds and fills the same
 * services: a token holds nothing but its id and kind, and errors are recognised by name and
 * registered on globalThis. Refusing the second copy instead would refuse that common, harmless
 * mix; what two copies could really disagree on — the plugin API, a token's kind, an error
 * code's status — is checked and fails start-up (or the import) loudly.
 */
export function createQuantix(options: CreateQuantixOptions & { database: false }): Promise<QuantixNode>;
export function createQuantix(options?: CreateQuantixOptions & { database?: DatabaseConfig }): Promise<Quantix>;
export async function createQuantix(options: CreateQuantixOptions = {}): Promise<Quantix | QuantixNode> {
  const ordered = orderPlugins(options.plugins ?? []);
  const id = `quantix-${randomUUID()}`;
  const logger = options.logger ?? createLogger({ name: 'quantix', level: process.env.QUANTIX_LOG_LEVEL ?? 'warn' });
  const database =
    options.database === false
      ? null
      : await openDatabase(options.database ?? { client: 'pglite', dataDir: DEFAULT_DATA_DIR });
  const events = createEventBus();
  const container = Container.of(id);
  const providers = new Map<string, string>(); // single-valued token id → providing plugin
  const kinds = new Map<string, { multiple: boolean; by: string }>(); // token id → kind, as first seen
  const readyHooks: (() => void | Promise<void>)[] = [];
  const closeHooks: (() => void | Promise<void>)[] = [];
  const config = Object.freeze({ ...(options.config ?? {}) });
  let closed = false;

  const assertOpen = () => {
    if (closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, `Quantix instance ${id} is closed`);
  };
  // The same id used as a single token in one place and a multi token in another (two versions
  // of a plugin or of core): a loud error rather than a lookup that quietly finds nothing.
  const checkKind = (token: AnyServiceToken, plugin: string | null) => {
    const by = plugin === null ? 'a lookup' : `plugin '${plugin}'`;
    const seen = kinds.get(token.id);
    if (!seen) {
      kinds.set(token.id, { multiple: token.multiple, by });
      return;
    }
    if (seen.multiple !== token.multiple) {
      const kind = (multiple: boolean) => (multiple ? 'multi-valued' : 'single-valued');
      throw new QuantixError(
        ErrorCode.PLUGIN_CONFLICT,
        `Token '${token.id}' is ${kind(token.multiple)} for ${by} but ${kind(seen.multiple)} for ${seen.by}`,
        { details: { token: token.id, ...(plugin === null ? {} : { plugin }) } },
      );
    }
  };
  // typedi's getMany reads only this instance's container; its get() would also consult the
  // global one, where an unrelated service under the same string id could answer.
  const entries = (token: AnyServiceToken): Provided[] => container.getMany<Provided>(token.id);
  const missing = (token: AnyServiceToken, plugin: string | null) => {
    const why =
      database === null && (token.id === DatabaseToken.id || token.id === RepositoriesToken.id)
        ? ': this instance was created with database: false (a node keeps no database)'
        : '';
    return new QuantixError(
      ErrorCode.PLUGIN_MISSING_SERVICE,
      plugin === null
        ? `No plugin provides '${token.id}'${why}`
        : `Plugin '${plugin}' needs '${token.id}', which no plugin provides${why}`,
      { details: { token: token.id, ...(plugin === null ? {} : { plugin }) } },
    );
  };
  const get = <T>(token: ServiceToken<T>): T => {
    assertOpen();
    if (token.multiple !== false) {
      throw new QuantixError(ErrorCode.PLUGIN_INVALID, `'${String(token.id)}' is a multi-valued token: use getAll()`, {
        details: { token: token.id },
      });
    }
    checkKind(token, null);
    const [entry] = entries(token);
    if (!entry) throw missing(token, null);
    return entry.resolve() as T;
  };
  const getAll = <T>(token: MultiServiceToken<T>): T[] => {
    assertOpen();
    if (token.multiple !== true) {
      throw new QuantixError(ErrorCode.PLUGIN_INVALID, `'${String(token.id)}' is a single-valued token: use get()`, {
        details: { token: token.id },
      });
    }
    checkKind(token, null);
    return entries(token).map((entry) => entry.resolve() as T);
  };
  const has = (token: AnyServiceToken): boolean => !closed && container.has(token.id);

  const add = (plugin: string, token: AnyServiceToken, entry: Provided) => {
    checkKind(token, plugin);
    if (!token.multiple) {
      const existing = providers.get(token.id);
      if (existing !== undefined) {
        throw pluginError(
          ErrorCode.PLUGIN_CONFLICT,
          plugin,
          `provides '${token.id}', which plugin '${existing}' already provides; only one may`,
        );
      }
      providers.set(token.id, plugin);
    }
    // Always `multiple` for typedi: single-valued tokens are kept single by `providers` above.
    container.set({ id: token.id, value: entry, multiple: true });
  };
  const lazy = <T>(plugin: string, token: AnyServiceToken, provider: ServiceProvider<T>, ctx: PluginContext) => {
    if ('value' in provider) return { resolve: () => provider.value };
    let state: 'idle' | 'resolving' | 'done' = 'idle';
    let value: T;
    return {
      resolve() {
        if (state === 'done') return value;
        if (state === 'resolving') {
          throw pluginError(
            ErrorCode.PLUGIN_INVALID,
            plugin,
            `the factory of '${token.id}' needs '${token.id}' itself`,
          );
        }
        state = 'resolving';
        try {
          value = provider.factory(ctx);
          state = 'done';
        } finally {
          if (state === 'resolving') state = 'idle';
        }
        return value;
      },
    };
  };

  const close = async () => {
    if (closed) return;
    closed = true;
    const failures: unknown[] = [];
    for (const hook of closeHooks.reverse()) {
      try {
        await hook();
      } catch (error) {
        failures.push(error);
        logger.error({ err: error }, 'a close hook failed');
      }
    }
    events.all.clear();
    Container.reset(id);
    await database?.close();
    if (failures.length > 0) throw new AggregateError(failures, 'some close hooks failed');
  };

  const contextFor = (plugin: QuantixPlugin): PluginContext => {
    // A plugin that declares what it uses gets only that, and what it provides itself.
    const declared =
      plugin.needs === undefined && plugin.optional === undefined
        ? null
        : new Set([...(plugin.needs ?? []), ...(plugin.optional ?? [])].map((token) => token.id));
    const getDeclared = <T>(token: ServiceToken<T>): T => {
      assertOpen();
      if (declared && !declared.has(token.id) && providers.get(token.id) !== plugin.name) {
        throw pluginError(
          ErrorCode.PLUGIN_INVALID,
          plugin.name,
          `gets '${token.id}' without declaring it: add it to the plugin's needs (or optional)`,
        );
      }
      try {
        return get(token);
      } catch (error) {
        // Name the plugin when it is this token that is missing (not one its factory needed).
        const self = isQuantixError(error, ErrorCode.PLUGIN_MISSING_SERVICE) && error.details.token === token.id;
        if (self && error.details.plugin === undefined) throw missing(token, plugin.name);
        throw error;
      }
    };
    const ctx: PluginContext = {
      pluginName: plugin.name,
      instanceId: id,
      config,
      logger: logger.child({ plugin: plugin.name }),
      events,
      get database() {
        return getDeclared(DatabaseToken);
      },
      get repositories() {
        return getDeclared(RepositoriesToken);
      },
      provide: (token, provider) => add(plugin.name, token, lazy(plugin.name, token, provider, ctx)),
      get: getDeclared,
      getAll,
      has,
      onReady: (hook) => void readyHooks.push(hook),
      onClose: (hook) => void closeHooks.push(hook),
    };
    return ctx;
  };

  try {
    if (database) {
      const repositories = createRepositories(database.knex);
      add(KERNEL, DatabaseToken, { resolve: () => database });
      add(KERNEL, RepositoriesToken, { resolve: () => repositories });
    }
    for (const plugin of ordered) {
      try {
        await plugin.register(contextFor(plugin));
      } catch (error) {
        if (isQuantixError(error) && error.details.plugin !== undefined) throw error;
        throw pluginError(
          ErrorCode.PLUGIN_INVALID,
          plugin.name,
          `register() failed: ${(error as Error)?.message ?? error}`,
          error,
        );
      }
    }
    // Every declaration, before anything starts: a node without a hypervisor plugin fails here,
    // naming what is missing, not at the first VM request.
    for (const plugin of ordered) {
      for (const token of plugin.optional ?? []) checkKind(token, plugin.name);
      for (const token of plugin.needs ?? []) {
        checkKind(token, plugin.name);
        if (!container.has(token.id)) throw missing(token, plugin.name);
      }
    }
    for (const hook of readyHooks) await hook();
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }

  const node: QuantixNode = { id, events, logger, plugins: ordered.map((p) => p.name), get, getAll, has, close };
  if (database) return { ...node, database, repositories: get(RepositoriesToken) };
  // For callers without the types (plain JavaScript): a clear error, not `undefined`.
  Object.defineProperties(node, {
    database: { get: () => get(DatabaseToken), enumerable: false },
    repositories: { get: () => get(RepositoriesToken), enumerable: false },
  });
  return node;
}
