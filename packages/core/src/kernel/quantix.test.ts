import { afterEach, describe, expect, it } from 'vitest';
import type { StorageBackend } from '../contracts/storage.js';
import { ErrorCode, isQuantixError } from '../errors.js';
import { callBackend } from '../services/storage.js';
import { DatabaseToken, HypervisorToken, RepositoriesToken, StorageBackendToken } from './core-tokens.js';
import { definePlugin, QUANTIX_PLUGIN_API_VERSION, type QuantixPlugin } from './plugin.js';
import { createQuantix, orderPlugins, type Quantix, type QuantixNode } from './quantix.js';
import { createMultiServiceToken, createServiceToken } from './tokens.js';

const memory = { client: 'pglite' } as const;
const open: Quantix[] = [];

async function start(plugins: QuantixPlugin[], config: Record<string, unknown> = {}): Promise<Quantix> {
  const quantix = await createQuantix({ database: memory, plugins, config });
  open.push(quantix);
  return quantix;
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isQuantixError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected start-up to fail');
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((q) => q.close()));
});

interface Greeter {
  greet(name: string): string;
}
const GreeterToken = createServiceToken<Greeter>('test.greeter');

const greeterPlugin = definePlugin({
  name: 'greeter',
  apiVersion: QUANTIX_PLUGIN_API_VERSION,
  register(ctx) {
    const prefix = String(ctx.config.greeting ?? 'hello');
    ctx.provide(GreeterToken, { value: { greet: (name) => `${prefix}, ${name}` } });
  },
});

describe('createQuantix', () => {
  it('gives each plugin its services and lets another plugin use them through a factory', async () => {
    const CounterToken = createServiceToken<{ next(): number }>('test.counter');
    let factoryRuns = 0;
    const user = definePlugin({
      name: 'user',
      apiVersion: 1,
      requires: ['greeter'],
      register(ctx) {
        ctx.provide(CounterToken, {
          factory: (c) => {
            factoryRuns++;
            const greeter = c.get(GreeterToken);
            let n = 0;
            return { next: () => (greeter.greet('x') ? ++n : -1) };
          },
        });
      },
    });
    // Given in the wrong order on purpose: `requires` orders registration.
    const quantix = await start([user, greeterPlugin], { greeting: 'hi' });
    expect(quantix.plugins).toEqual(['greeter', 'user']);
    expect(quantix.get(GreeterToken).greet('Ada')).toBe('hi, Ada');
    expect(factoryRuns).toBe(0); // lazy
    expect(quantix.get(CounterToken).next()).toBe(1);
    expect(quantix.get(CounterToken).next()).toBe(2); // one instance
    expect(factoryRuns).toBe(1);
  });

  it('keeps two instances in one process apart: services, events and data', async () => {
    const a = await start([greeterPlugin], { greeting: 'A' });
    const b = await start([greeterPlugin], { greeting: 'B' });
    expect(a.get(GreeterToken).greet('x')).toBe('A, x');
    expect(b.get(GreeterToken).greet('x')).toBe('B, x');
    const seenByB: string[] = [];
    b.events.on('node.connected', (e) => seenByB.push(e.nodeId));
    a.events.emit('node.connected', { nodeId: 'from-a' });
    expect(seenByB).toEqual([]);
    await a.repositories.nodes.create({ hostname: 'only-in-a' });
    expect(await b.repositories.nodes.list()).toEqual([]);
    expect(a.id).not.toBe(b.id);
  });

  it('collects every provider of a multiple token', async () => {
    const backend = (type: string): StorageBackend => ({
      type,
      status: async () => ({
        available: true,
        reason: null,
        rootPath: '/',
        capacityBytes: 1,
        availableBytes: 1,
        usedBytes: 0,
      }),
      list: async () => ({ files: [], skipped: [] }),
    });
    const local = definePlugin({
      name: 'local',
      apiVersion: 1,
      register: (ctx) => ctx.provide(StorageBackendToken, { value: backend('local') }),
    });
    const nfs = definePlugin({
      name: 'nfs',
      apiVersion: 1,
      register: (ctx) => ctx.provide(StorageBackendToken, { value: backend('nfs') }),
    });
    const quantix = await start([local, nfs]);
    expect(quantix.getAll(StorageBackendToken).map((b) => b.type)).toEqual(['local', 'nfs']);
    const first = quantix.getAll(StorageBackendToken)[0] as StorageBackend;
    // A backend without an optional operation: the core reports it, with one code.
    const error = await failure(callBackend(first, 'activate', { pool: {} as never }));
    expect(error.code).toBe(ErrorCode.UNSUPPORTED_OPERATION);
    expect(error.message).toBe("Storage backend 'local' does not support 'activate'");
  });

  it('runs ready hooks after every plugin registered, and close hooks in reverse order', async () => {
    const calls: string[] = [];
    const make = (name: string, requires: string[] = []) =>
      definePlugin({
        name,
        apiVersion: 1,
        requires,
        register(ctx) {
          calls.push(`register ${name}`);
          ctx.onReady(() => void calls.push(`ready ${name}`));
          ctx.onClose(() => void calls.push(`close ${name}`));
        },
      });
    const quantix = await createQuantix({ database: memory, plugins: [make('one'), make('two', ['one'])] });
    await quantix.close();
    await quantix.close(); // idempotent
    expect(calls).toEqual(['register one', 'register two', 'ready one', 'ready two', 'close two', 'close one']);
    expect(() => quantix.get(GreeterToken)).toThrow(expect.objectContaining({ code: ErrorCode.INSTANCE_CLOSED }));
  });

  it('never calls a service’s own destroy() on close (typedi would, with no arguments)', async () => {
    const destroyed: unknown[][] = [];
    const DomainsToken = createServiceToken<{ destroy(...args: unknown[]): void }>('test.domains');
    const plugin = definePlugin({
      name: 'domains',
      apiVersion: 1,
      register: (ctx) =>
        ctx.provide(DomainsToken, { factory: () => ({ destroy: (...args: unknown[]) => void destroyed.push(args) }) }),
    });
    const quantix = await createQuantix({ database: memory, plugins: [plugin] });
    quantix.get(DomainsToken);
    await quantix.close();
    expect(destroyed).toEqual([]);
  });

  it('says which token is missing when nobody provides it', async () => {
    const quantix = await start([]);
    expect(quantix.has(HypervisorToken)).toBe(false);
    expect(() => quantix.get(HypervisorToken)).toThrow(
      expect.objectContaining({
        code: ErrorCode.PLUGIN_MISSING_SERVICE,
        message: "No plugin provides 'quantix.hypervisor'",
      }),
    );
    expect(quantix.getAll(StorageBackendToken)).toEqual([]);
  });
});

describe('start-up fails fast, naming the plugin', () => {
  it('for an apiVersion range this core does not satisfy, naming both versions', async () => {
    expect(QUANTIX_PLUGIN_API_VERSION).toBe('1.1.0');
    const next = definePlugin({ name: 'next-major', apiVersion: '^2.0.0', register() {} });
    const error = await failure(createQuantix({ database: memory, plugins: [next] }));
    expect(error.code).toBe(ErrorCode.PLUGIN_API_VERSION);
    expect(error.message).toBe(
      "Plugin 'next-major': targets plugin API version ^2.0.0, but this @quantix/core provides plugin API version 1.1.0",
    );
    const newerMinor = definePlugin({ name: 'wants-1.2', apiVersion: '^1.2.0', register() {} });
    expect((await failure(createQuantix({ database: memory, plugins: [newerMinor] }))).code).toBe(
      ErrorCode.PLUGIN_API_VERSION,
    );
    const garbled = definePlugin({ name: 'garbled', apiVersion: 'one', register() {} });
    const invalid = await failure(createQuantix({ database: memory, plugins: [garbled] }));
    expect(invalid.code).toBe(ErrorCode.PLUGIN_INVALID);
    expect(invalid.message).toContain('"one" is not a semver range');
  });

  it('accepts a semver range the core satisfies, and the number 1 of API 1.0 plugins as ^1.0.0', async () => {
    const plugins = [
      definePlugin({ name: 'range', apiVersion: '^1.0.0', register() {} }),
      definePlugin({ name: 'minor', apiVersion: '>=1.1.0 <2', register() {} }),
      definePlugin({ name: 'number', apiVersion: 1, register() {} }),
    ];
    expect((await start(plugins)).plugins).toEqual(['range', 'minor', 'number']);
  });

  it('for an unsupported apiVersion', async () => {
    const old = definePlugin({ name: 'from-the-future', apiVersion: 99, register() {} });
    const error = await failure(createQuantix({ database: memory, plugins: [old] }));
    expect(error.code).toBe(ErrorCode.PLUGIN_API_VERSION);
    expect(error.message).toContain("Plugin 'from-the-future'");
    expect(error.message).toContain('version 99');
  });

  it('for a missing required plugin', async () => {
    const needy = definePlugin({ name: 'needy', apiVersion: 1, requires: ['@quantix/storage-local'], register() {} });
    const error = await failure(createQuantix({ database: memory, plugins: [needy] }));
    expect(error.code).toBe(ErrorCode.PLUGIN_MISSING_DEPENDENCY);
    expect(error.message).toBe(
      "Plugin 'needy': requires plugin '@quantix/storage-local', which was not given to createQuantix",
    );
  });

  it('for a second provider of a single-valued token, naming both', async () => {
    const second = definePlugin({
      name: 'impostor',
      apiVersion: 1,
      register: (ctx) => ctx.provide(GreeterToken, { value: { greet: () => 'boo' } }),
    });
    const error = await failure(createQuantix({ database: memory, plugins: [greeterPlugin, second] }));
    expect(error.code).toBe(ErrorCode.PLUGIN_CONFLICT);
    expect(error.message).toBe(
      "Plugin 'impostor': provides 'test.greeter', which plugin 'greeter' already provides; only one may",
    );
  });

  it('for the same plugin given twice, a dependency cycle, or malformed metadata', async () => {
    expect((await failure(createQuantix({ database: memory, plugins: [greeterPlugin, greeterPlugin] }))).code).toBe(
      ErrorCode.PLUGIN_CONFLICT,
    );
    const a = definePlugin({ name: 'a', apiVersion: 1, requires: ['b'], register() {} });
    const b = definePlugin({ name: 'b', apiVersion: 1, requires: ['a'], register() {} });
    const cycle = await failure(createQuantix({ database: memory, plugins: [a, b] }));
    expect(cycle.code).toBe(ErrorCode.PLUGIN_INVALID);
    expect(cycle.message).toMatch(/a → b → a/);
    expect(() => orderPlugins([{ name: '', apiVersion: 1, register() {} }])).toThrow(/has no name/);
    expect(() => orderPlugins([{ name: 'x', apiVersion: 1 } as never])).toThrow(/has no register/);
  });

  it('for a register() that throws, and releases what it opened', async () => {
    const closed: string[] = [];
    const good = definePlugin({
      name: 'good',
      apiVersion: 1,
      register: (ctx) => ctx.onClose(() => void closed.push('good')),
    });
    const broken = definePlugin({
      name: 'broken',
      apiVersion: 1,
      register() {
        throw new Error('config.path is missing');
      },
    });
    const error = await failure(createQuantix({ database: memory, plugins: [good, broken] }));
    expect(error.code).toBe(ErrorCode.PLUGIN_INVALID);
    expect(error.message).toBe("Plugin 'broken': register() failed: config.path is missing");
    expect(closed).toEqual(['good']);
  });
});

describe('single- and multi-valued tokens', () => {
  it('are different types: get() takes a single token, getAll() a multi token', async () => {
    const quantix = await start([greeterPlugin]);
    // @ts-expect-error a multi-valued token has no single value
    expect(() => quantix.get(StorageBackendToken)).toThrow(
      expect.objectContaining({
        code: ErrorCode.PLUGIN_INVALID,
        message: "'quantix.storage-backend' is a multi-valued token: use getAll()",
      }),
    );
    // @ts-expect-error a single-valued token is no list
    expect(() => quantix.getAll(GreeterToken)).toThrow(
      expect.objectContaining({
        code: ErrorCode.PLUGIN_INVALID,
        message: "'test.greeter' is a single-valued token: use get()",
      }),
    );
    const greeter: Greeter = quantix.get(GreeterToken);
    const backends: StorageBackend[] = quantix.getAll(StorageBackendToken);
    expect([greeter.greet('x'), backends]).toEqual(['hello, x', []]);
  });

  it('are keyed by their id: a token made again with the same id (as another copy of core would) finds the same provider', async () => {
    const quantix = await start([greeterPlugin]);
    expect(quantix.get(createServiceToken<Greeter>('test.greeter')).greet('x')).toBe('hello, x');
    const backends = createMultiServiceToken<StorageBackend>('quantix.storage-backend');
    const plugin = definePlugin({
      name: 'other-copy',
      apiVersion: '^1.0.0',
      register: (ctx) => ctx.provide(backends, { value: { type: 'copy' } as StorageBackend }),
    });
    const other = await start([plugin]);
    expect(other.getAll(StorageBackendToken).map((b) => b.type)).toEqual(['copy']);
  });

  it('fails loudly when one id is used as a single token by one plugin and a multi token by another', async () => {
    const asSingle = definePlugin({
      name: 'as-single',
      apiVersion: 1,
      register: (ctx) => ctx.provide(createServiceToken<string>('test.shape'), { value: 'one' }),
    });
    const asMulti = definePlugin({
      name: 'as-multi',
      apiVersion: 1,
      register: (ctx) => ctx.provide(createMultiServiceToken<string>('test.shape'), { value: 'many' }),
    });
    const error = await failure(createQuantix({ database: memory, plugins: [asSingle, asMulti] }));
    expect(error.code).toBe(ErrorCode.PLUGIN_CONFLICT);
    expect(error.message).toBe(
      "Token 'test.shape' is multi-valued for plugin 'as-multi' but single-valued for plugin 'as-single'",
    );
  });

  it('refuses a factory that needs its own service, instead of recursing', async () => {
    const Loop = createServiceToken<number>('test.loop');
    const plugin = definePlugin({
      name: 'loop',
      apiVersion: 1,
      register: (ctx) => ctx.provide(Loop, { factory: (c) => c.get(Loop) + 1 }),
    });
    const quantix = await start([plugin]);
    expect(() => quantix.get(Loop)).toThrow(
      expect.objectContaining({
        code: ErrorCode.PLUGIN_INVALID,
        message: "Plugin 'loop': the factory of 'test.loop' needs 'test.loop' itself",
      }),
    );
  });
});

describe('declared services', () => {
  const hypervisor = definePlugin({
    name: 'fake-hypervisor',
    apiVersion: '^1.1.0',
    register: (ctx) => ctx.provide(HypervisorToken, { value: { list: async () => [] } as never }),
  });

  it('start-up fails, naming the plugin and the token, when a needed service has no provider — before any ready hook', async () => {
    const calls: string[] = [];
    const other = definePlugin({
      name: 'other',
      apiVersion: 1,
      register(ctx) {
        ctx.onReady(() => void calls.push('ready'));
        ctx.onClose(() => void calls.push('close'));
      },
    });
    const vms = definePlugin({ name: 'vms', apiVersion: '^1.1.0', needs: [HypervisorToken], register() {} });
    const error = await failure(createQuantix({ database: memory, plugins: [other, vms] }));
    expect(error).toEqual({
      code: ErrorCode.PLUGIN_MISSING_SERVICE,
      message: "Plugin 'vms' needs 'quantix.hypervisor', which no plugin provides",
    });
    expect(calls).toEqual(['close']);
  });

  it('a need is met by a provider given after the plugin, and a multi token needs at least one provider', async () => {
    const vms = definePlugin({
      name: 'vms',
      apiVersion: '^1.1.0',
      needs: [HypervisorToken],
      register: (ctx) => ctx.onReady(async () => void (await ctx.get(HypervisorToken).list())),
    });
    expect((await start([vms, hypervisor])).plugins).toEqual(['vms', 'fake-hypervisor']);
    const scanner = definePlugin({
      name: 'scanner',
      apiVersion: '^1.1.0',
      needs: [StorageBackendToken],
      register() {},
    });
    const error = await failure(createQuantix({ database: memory, plugins: [scanner] }));
    expect(error.message).toBe("Plugin 'scanner' needs 'quantix.storage-backend', which no plugin provides");
  });

  it('an optional service may be absent; the plugin asks has()', async () => {
    const seen: boolean[] = [];
    const agent = definePlugin({
      name: 'agent',
      apiVersion: '^1.1.0',
      optional: [HypervisorToken],
      register: (ctx) => ctx.onReady(() => void seen.push(ctx.has(HypervisorToken))),
    });
    await start([agent]);
    await start([agent, hypervisor]);
    expect(seen).toEqual([false, true]);
  });

  it('a plugin that declares gets only what it declared or provides itself', async () => {
    const Own = createServiceToken<string>('test.own');
    const sneaky = definePlugin({
      name: 'sneaky',
      apiVersion: '^1.1.0',
      needs: [],
      register(ctx) {
        ctx.provide(Own, { value: 'mine' });
        ctx.onReady(() => {
          expect(ctx.get(Own)).toBe('mine');
          ctx.get(HypervisorToken);
        });
      },
    });
    const error = await failure(createQuantix({ database: memory, plugins: [hypervisor, sneaky] }));
    expect(error).toEqual({
      code: ErrorCode.PLUGIN_INVALID,
      message:
        "Plugin 'sneaky': gets 'quantix.hypervisor' without declaring it: add it to the plugin's needs (or optional)",
    });
  });

  it('a service missing deep down is named with the plugin whose factory needed it', async () => {
    const Outer = createServiceToken<string>('test.outer');
    const Inner = createServiceToken<string>('test.inner');
    const outer = definePlugin({
      name: 'outer',
      apiVersion: 1,
      register: (ctx) => ctx.provide(Outer, { factory: (c) => `outer(${c.get(Inner)})` }),
    });
    const user = definePlugin({
      name: 'user',
      apiVersion: '^1.1.0',
      needs: [Outer],
      register: (ctx) => ctx.onReady(() => void ctx.get(Outer)),
    });
    const error = await failure(createQuantix({ database: memory, plugins: [outer, user] }));
    expect(error).toEqual({
      code: ErrorCode.PLUGIN_MISSING_SERVICE,
      message: "Plugin 'outer' needs 'test.inner', which no plugin provides",
    });
  });

  it('needs and optional must be tokens', async () => {
    const bad = { name: 'bad', apiVersion: 1, needs: ['quantix.hypervisor'], register() {} } as never;
    expect(() => orderPlugins([bad])).toThrow("Plugin 'bad': needs must be a list of service tokens");
  });
});

describe('a node: createQuantix({ database: false })', () => {
  it('opens no database and has no repositories: absent from the type, an error when reached anyway', async () => {
    const node: QuantixNode = await createQuantix({ database: false, plugins: [greeterPlugin] });
    try {
      expect(node.get(GreeterToken).greet('node')).toBe('hello, node');
      expect(node.has(RepositoriesToken)).toBe(false);
      expect(node.has(DatabaseToken)).toBe(false);
      // @ts-expect-error a node's type has no repositories
      const reach = () => node.repositories;
      expect(reach).toThrow(
        expect.objectContaining({
          code: ErrorCode.PLUGIN_MISSING_SERVICE,
          message:
            "No plugin provides 'quantix.repositories': this instance was created with database: false (a node keeps no database)",
        }),
      );
      expect(() => (node as unknown as Quantix).database).toThrow(
        expect.objectContaining({ code: ErrorCode.PLUGIN_MISSING_SERVICE }),
      );
    } finally {
      await node.close();
    }
  });

  it('fails start-up for a plugin that needs the database, naming it', async () => {
    const records = definePlugin({ name: 'records', apiVersion: '^1.1.0', needs: [RepositoriesToken], register() {} });
    const error = await failure(createQuantix({ database: false, plugins: [records] }));
    expect(error).toEqual({
      code: ErrorCode.PLUGIN_MISSING_SERVICE,
      message:
        "Plugin 'records' needs 'quantix.repositories', which no plugin provides: this instance was created with database: false (a node keeps no database)",
    });
  });

  it('an undeclared (API 1.0) plugin reaching ctx.repositories on a node gets PLUGIN_MISSING_SERVICE naming it', async () => {
    const Counter = createServiceToken<() => Promise<number>>('test.count');
    const legacy = definePlugin({
      name: 'legacy',
      apiVersion: 1,
      register: (ctx) =>
        ctx.provide(Counter, {
          factory: (c) => {
            const { images } = c.repositories;
            return () => images.count();
          },
        }),
    });
    const node = await createQuantix({ database: false, plugins: [legacy] });
    try {
      expect(() => node.get(Counter)).toThrow(
        expect.objectContaining({
          code: ErrorCode.PLUGIN_MISSING_SERVICE,
          details: { token: 'quantix.repositories', plugin: 'legacy' },
        }),
      );
    } finally {
      await node.close();
    }
  });

  it('with a database, the kernel provides it and the repositories as services', async () => {
    const seen: string[] = [];
    const records = definePlugin({
      name: 'records',
      apiVersion: '^1.1.0',
      needs: [RepositoriesToken, DatabaseToken],
      register: (ctx) =>
        ctx.onReady(async () => void seen.push(String(await ctx.repositories.images.count()), ctx.database.client)),
    });
    const quantix = await start([records]);
    expect(quantix.get(RepositoriesToken)).toBe(quantix.repositories);
    expect(quantix.get(DatabaseToken)).toBe(quantix.database);
    expect(seen).toEqual(['0', 'pglite']);
    const twice = definePlugin({
      name: 'second-db',
      apiVersion: 1,
      register: (ctx) => ctx.provide(DatabaseToken, { value: {} as never }),
    });
    expect((await failure(createQuantix({ database: memory, plugins: [twice] }))).message).toBe(
      "Plugin 'second-db': provides 'quantix.database', which plugin '@quantix/core' already provides; only one may",
    );
  });
});
