import { afterEach, describe, expect, it } from 'vitest';
import type { StorageBackend } from '../contracts/storage.js';
import { ErrorCode, isQuantixError } from '../errors.js';
import { callBackend } from '../services/storage.js';
import { HypervisorToken, StorageBackendToken } from './core-tokens.js';
import { definePlugin, QUANTIX_PLUGIN_API_VERSION, type QuantixPlugin } from './plugin.js';
import { createQuantix, orderPlugins, type Quantix } from './quantix.js';
import { createServiceToken } from './tokens.js';

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
        code: ErrorCode.SERVICE_NOT_FOUND,
        message: "No plugin provides 'quantix.hypervisor'",
      }),
    );
    expect(quantix.getAll(StorageBackendToken)).toEqual([]);
  });
});

describe('start-up fails fast, naming the plugin', () => {
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
