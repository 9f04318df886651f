import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Container, type ContainerInstance } from 'typedi';
import type { Repositories } from '../contracts/repositories.js';
import { ErrorCode, isQuantixError, QuantixError } from '../errors.js';
import { createEventBus, type EventBus } from '../events/bus.js';
import { createLogger } from '../logging.js';
import { type Database, type DatabaseConfig, openDatabase } from '../persistence/database.js';
import { createRepositories } from '../persistence/repositories/index.js';
import { type PluginContext, QUANTIX_PLUGIN_API_VERSION, type QuantixPlugin } from './plugin.js';
import type { ServiceToken } from './tokens.js';

/** Where the embedded database lives when no database is configured. */
export const DEFAULT_DATA_DIR = '.quantix/db';

export interface CreateQuantixOptions {
  /** Default: PGlite in `./.quantix/db`. Give `{ client: 'pglite' }` for an in-memory database. */
  database?: DatabaseConfig;
  plugins?: readonly QuantixPlugin[];
  config?: Record<string, unknown>;
  /** Default: pino at level 'warn' (or QUANTIX_LOG_LEVEL). */
  logger?: Logger;
}

export interface Quantix {
  readonly id: string;
  readonly database: Database;
  readonly repositories: Repositories;
  readonly events: EventBus;
  readonly logger: Logger;
  /** Registered plugin names, in registration order. */
  readonly plugins: readonly string[];
  get<T>(token: ServiceToken<T>): T;
  getAll<T>(token: ServiceToken<T>): T[];
  has<T>(token: ServiceToken<T>): boolean;
  /** Runs close hooks (reverse order), closes the database and drops the container. Idempotent. */
  close(): Promise<void>;
}

function pluginError(code: ErrorCode, plugin: string, message: string, cause?: unknown): QuantixError {
  return new QuantixError(code, `Plugin '${plugin}': ${message}`, { details: { plugin }, cause });
}

function describe(plugin: unknown): string {
  const name = (plugin as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name !== '' ? name : '(unnamed)';
}

/**
 * Checks plugin metadata the way fastify checks its plugins at registration, and returns the
 * plugins ordered so that every plugin comes after the plugins it requires.
 */
export function orderPlugins(plugins: readonly QuantixPlugin[]): QuantixPlugin[] {
  const byName = new Map<string, QuantixPlugin>();
  for (const plugin of plugins) {
    const name = describe(plugin);
    if (typeof plugin?.name !== 'string' || plugin.name === '') {
      throw pluginError(ErrorCode.PLUGIN_INVALID, name, 'has no name');
    }
    if (typeof plugin.register !== 'function') {
      throw pluginError(ErrorCode.PLUGIN_INVALID, name, 'has no register(ctx) function');
    }
    if (plugin.apiVersion !== QUANTIX_PLUGIN_API_VERSION) {
      throw pluginError(
        ErrorCode.PLUGIN_API_VERSION,
        name,
        `targets plugin API version ${String(plugin.apiVersion)}, but this @quantix/core supports version ${QUANTIX_PLUGIN_API_VERSION}`,
      );
    }
    if (byName.has(name)) throw pluginError(ErrorCode.PLUGIN_CONFLICT, name, 'is given twice');
    byName.set(name, plugin);
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
 * Builds an isolated Quantix instance: its own database connection, typedi container, event
 * bus and logger. Start-up fails fast, naming the plugin, on any plugin problem; whatever was
 * opened by then is closed again.
 */
export async function createQuantix(options: CreateQuantixOptions = {}): Promise<Quantix> {
  const ordered = orderPlugins(options.plugins ?? []);
  const id = `quantix-${randomUUID()}`;
  const logger = options.logger ?? createLogger({ name: 'quantix', level: process.env.QUANTIX_LOG_LEVEL ?? 'warn' });
  const database = await openDatabase(options.database ?? { client: 'pglite', dataDir: DEFAULT_DATA_DIR });
  const repositories = createRepositories(database.knex);
  const events = createEventBus();
  const container: ContainerInstance = Container.of(id);
  const providers = new Map<string, string>(); // single-valued token id → providing plugin
  const readyHooks: (() => void | Promise<void>)[] = [];
  const closeHooks: (() => void | Promise<void>)[] = [];
  const config = Object.freeze({ ...(options.config ?? {}) });
  let closed = false;

  const assertOpen = () => {
    if (closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, `Quantix instance ${id} is closed`);
  };
  const get = <T>(token: ServiceToken<T>): T => {
    assertOpen();
    if (token.multiple) return getAll(token)[0] as T;
    if (!container.has(token.token)) {
      throw new QuantixError(ErrorCode.SERVICE_NOT_FOUND, `No plugin provides '${token.id}'`, {
        details: { token: token.id },
      });
    }
    return container.get(token.token);
  };
  const getAll = <T>(token: ServiceToken<T>): T[] => {
    assertOpen();
    return container.has(token.token) ? container.getMany(token.token) : [];
  };
  const has = <T>(token: ServiceToken<T>): boolean => !closed && container.has(token.token);

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
    // typedi's reset calls a method named destroy() on every factory-made service, with no
    // arguments (a Hypervisor's destroy() would be asked to stop a domain). Services end through
    // onClose hooks only, so strip what makes typedi do that before dropping the container.
    for (const service of (container as unknown as { services: { factory?: unknown; type?: unknown }[] }).services) {
      service.factory = undefined;
      service.type = null;
    }
    Container.reset(id);
    await database.close();
    if (failures.length > 0) throw new AggregateError(failures, 'some close hooks failed');
  };

  const contextFor = (plugin: QuantixPlugin): PluginContext => {
    const ctx: PluginContext = {
      pluginName: plugin.name,
      instanceId: id,
      config,
      logger: logger.child({ plugin: plugin.name }),
      events,
      database,
      repositories,
      provide(token, provider) {
        if (!token.multiple) {
          const existing = providers.get(token.id);
          if (existing !== undefined) {
            throw pluginError(
              ErrorCode.PLUGIN_CONFLICT,
              plugin.name,
              `provides '${token.id}', which plugin '${existing}' already provides; only one may`,
            );
          }
          providers.set(token.id, plugin.name);
        }
        if ('value' in provider) {
          container.set({ id: token.token, value: provider.value, multiple: token.multiple });
        } else {
          container.set({ id: token.token, factory: () => provider.factory(ctx), multiple: token.multiple });
        }
      },
      get,
      getAll,
      has,
      onReady: (hook) => void readyHooks.push(hook),
      onClose: (hook) => void closeHooks.push(hook),
    };
    return ctx;
  };

  try {
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
    for (const hook of readyHooks) await hook();
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }

  return {
    id,
    database,
    repositories,
    events,
    logger,
    plugins: ordered.map((p) => p.name),
    get,
    getAll,
    has,
    close,
  };
}
