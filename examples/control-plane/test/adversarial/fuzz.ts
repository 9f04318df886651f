/**
 * Requests generated from an operation's schemas with fast-check: mostly values the schema
 * allows (so requests get past validation and reach the code behind it), mixed with hostile
 * ones — NUL bytes, path traversal, system paths, bidi controls, huge strings and numbers,
 * wrong types, prototype keys — and ids of things that exist, so deletes and creates act.
 */
import fc from 'fast-check';
import { rawRequest, responseProblem } from './http.js';
import type { JsonSchema, Operation } from './operations.js';
import { pathOf } from './operations.js';

export interface FuzzContext {
  /** Ids of records that exist (the local node and pool, a ready image, …). */
  knownIds: readonly string[];
  /** Absolute paths that must never be touched: the fuzzer aims at them. */
  forbiddenPaths: readonly string[];
  /** Absolute paths where the system may put things (a pool root allowed in this test). */
  usablePaths: readonly string[];
  /**
   * What no answer may contain unless the request's URL or body carried it (an echo of hostile
   * input is no leak): the paths of the control plane's own files (database, upload staging,
   * credentials) and its API token.
   */
  secrets: readonly string[];
}

export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

function hostileStrings(context: FuzzContext): string[] {
  return [
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '%00',
    '../../../../etc/passwd',
    '..',
    '.',
    '/',
    '/etc',
    '/root',
    '/proc/self/environ',
    'vms/web/seed.iso',
    '\u202Eexe.iso',
    '\u0007\u001b[31mred',
    'x'.repeat(5_000),
    '😀'.repeat(300),
    "'; drop table images; --",
    '<script>alert(1)</script>',
    '__proto__',
    'constructor',
    '-1',
    '1e309',
    'NaN',
    'null',
    '{"a":1}',
    'C:\\Windows',
    ...context.forbiddenPaths,
    ...context.forbiddenPaths.map((p) => `${p}/../${p.split('/').pop() ?? ''}`),
    ...context.knownIds,
    ...context.usablePaths,
  ];
}

/** Keys tried on open objects: a storage config's, and the prototype's. */
const EXTRA_KEYS = ['path', 'mountPoint', 'server', 'export', 'create', 'maxDepth', '__proto__', 'constructor', 'x'];

/** Fields that hold a path on some machine. */
const pathLike = (key: string) => /path|mountpoint|dir|export/i.test(key);

/** Paths the system may use, paths it must never touch, and the usual traversals. */
function pathArbitrary(context: FuzzContext): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...context.usablePaths) },
    { weight: 3, arbitrary: fc.constantFrom(...context.forbiddenPaths) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('/', '/etc', '/root', '/var/lib/postgresql', 'relative/dir', '../..', '/srv/../etc'),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(...context.usablePaths)
        .chain((p) => fc.constantFrom(`${p}/../../..`, `${p}/./x`, `${p}//x`, `${p}/`)),
    },
  );
}

/** An example from the document, with each absolute path in it drawn from the paths this run aims at. */
function exampleArbitrary(example: unknown, context: FuzzContext): fc.Arbitrary<unknown> {
  if (typeof example === 'string' && example.startsWith('/')) return pathArbitrary(context);
  if (Array.isArray(example)) return fc.tuple(...example.map((e) => exampleArbitrary(e, context)));
  if (example && typeof example === 'object') {
    return fc.record(Object.fromEntries(Object.entries(example).map(([k, v]) => [k, exampleArbitrary(v, context)])));
  }
  return fc.constant(example);
}

const hostileNumbers = [-1, 0, -0, 0.5, 2 ** 31, 2 ** 53 + 2, 1e308, -1e308, Number.MAX_SAFE_INTEGER];

/** Any JSON value, small. */
function anyJson(context: FuzzContext): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    fc.constantFrom(...hostileStrings(context)),
    fc.string({ maxLength: 20 }),
    fc.boolean(),
    fc.constantFrom(...hostileNumbers),
    fc.constant(null),
  );
  return fc.oneof(
    { weight: 4, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(leaf, { maxLength: 3 }) },
    {
      weight: 1,
      arbitrary: fc.dictionary(fc.constantFrom('a', '__proto__', 'constructor', 'path'), leaf, { maxKeys: 2 }),
    },
  );
}

/** A value the schema allows (within small bounds). */
function validArbitrary(
  schema: JsonSchema,
  context: FuzzContext,
  key: string,
  depth: number,
  mixed: boolean,
): fc.Arbitrary<unknown> {
  // Children are valid too, or (mixed) each may be hostile on its own.
  const child = (s: JsonSchema, k: string) =>
    mixed ? fieldArbitrary(s, context, k, depth + 1) : validArbitrary(s, context, k, depth + 1, false);
  const examples = schema.examples ?? (schema.example !== undefined ? [schema.example] : []);
  if (examples.length > 0) {
    const rest = { ...schema, examples: [], example: undefined };
    return fc.oneof(
      { weight: 2, arbitrary: fc.oneof(...examples.map((e) => exampleArbitrary(e, context))) },
      { weight: 1, arbitrary: validArbitrary(rest, context, key, depth, mixed) },
    );
  }
  if (pathLike(key) && (schema.type === 'string' || schema.type === undefined)) return pathArbitrary(context);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives?.length) return fc.oneof(...alternatives.map((s) => validArbitrary(s, context, key, depth, mixed)));
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  let base: fc.Arbitrary<unknown>;
  switch (type) {
    case 'string': {
      const minLength = schema.minLength ?? 0;
      const maxLength = Math.min(schema.maxLength ?? 40, Math.max(minLength, 40));
      if (schema.format === 'uuid') base = fc.uuid();
      else if (schema.pattern) {
        let pattern: RegExp | null = null;
        try {
          pattern = new RegExp(schema.pattern);
        } catch {
          pattern = null;
        }
        base = pattern
          ? fc.stringMatching(pattern).filter((s) => s.length >= minLength && s.length <= (schema.maxLength ?? 1e9))
          : fc.string({ minLength, maxLength });
      } else base = fc.string({ minLength, maxLength });
      // Fields that name records get ids that exist, so the request acts on something.
      if (/ids?$/i.test(key) && context.knownIds.length > 0) {
        base = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...context.knownIds) }, { weight: 1, arbitrary: base });
      }
      break;
    }
    case 'integer':
    case 'number': {
      const min = typeof schema.minimum === 'number' ? schema.minimum : -1_000;
      const max = typeof schema.maximum === 'number' ? schema.maximum : 1_000_000;
      base =
        type === 'integer'
          ? fc.integer({ min: Math.ceil(min), max: Math.floor(max) })
          : fc.double({ min, max, noNaN: true });
      break;
    }
    case 'boolean':
      base = fc.boolean();
      break;
    case 'array':
      base = fc.array(schema.items && depth < 4 ? child(schema.items, key) : anyJson(context), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
      break;
    case 'object':
    case undefined: {
      if (depth >= 4) {
        base = fc.constant({});
        break;
      }
      const properties = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const record = fc.record(
        Object.fromEntries(Object.entries(properties).map(([name, s]) => [name, child(s, name)])),
        { requiredKeys: Object.keys(properties).filter((name) => required.has(name)) },
      );
      // Keys beyond the declared ones: where the schema takes any (a backend's config, labels),
      // and, in mixed mode, everywhere — including keys an attacker would try.
      const open = schema.additionalProperties !== false && (mixed || schema.additionalProperties !== undefined);
      const extraValue = (k: string) =>
        typeof schema.additionalProperties === 'object' && Object.keys(schema.additionalProperties).length > 0
          ? child(schema.additionalProperties, k)
          : pathLike(k)
            ? pathArbitrary(context)
            : anyJson(context);
      const extra = open
        ? fc
            .subarray(EXTRA_KEYS, { maxLength: 2 })
            .chain((keys) =>
              fc
                .tuple(...keys.map((k) => extraValue(k)))
                .map((values) => Object.fromEntries(keys.map((k, i) => [k, values[i]]))),
            )
        : fc.constant({});
      base = fc.tuple(record, extra).map(([known, more]) => ({ ...more, ...known }));
      break;
    }
    default:
      base = anyJson(context);
  }
  return schema.nullable ? fc.oneof(base, fc.constant(null)) : base;
}

/** A field: usually valid, sometimes hostile, sometimes of the wrong type. */
function fieldArbitrary(schema: JsonSchema, context: FuzzContext, key: string, depth: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: validArbitrary(schema, context, key, depth, true) },
    { weight: 2, arbitrary: fc.constantFrom(...hostileStrings(context)) },
    { weight: 1, arbitrary: anyJson(context) },
  );
}

/** A whole value: entirely valid (reaches the code behind validation), or with hostile parts. */
export function inputArbitrary(schema: JsonSchema, context: FuzzContext, key: string): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 1, arbitrary: validArbitrary(schema, context, key, 0, false) },
    { weight: 1, arbitrary: fieldArbitrary(schema, context, key, 0) },
  );
}

const asQueryValue = (value: unknown) => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

/** Requests for one operation, carrying `headers` (the credentials under test). */
export function requestArbitrary(
  operation: Operation,
  context: FuzzContext,
  headers: Record<string, string>,
): fc.Arbitrary<FuzzRequest> {
  const pathParams = operation.parameters.filter((p) => p.in === 'path');
  const queryParams = operation.parameters.filter((p) => p.in === 'query');
  const params = fc.record(
    Object.fromEntries(pathParams.map((p) => [p.name, inputArbitrary(p.schema, context, p.name).map(asQueryValue)])),
  );
  const query = fc.record(
    Object.fromEntries(queryParams.map((p) => [p.name, inputArbitrary(p.schema, context, p.name).map(asQueryValue)])),
    { requiredKeys: [] },
  );
  const body: fc.Arbitrary<string | Buffer | undefined> = operation.body
    ? fc.oneof(
        { weight: 8, arbitrary: inputArbitrary(operation.body, context, 'body').map((b) => JSON.stringify(b)) },
        { weight: 1, arbitrary: anyJson(context).map((b) => JSON.stringify(b) ?? 'null') },
        { weight: 1, arbitrary: fc.constantFrom('{', '[]', '"', '{"a":'.repeat(200), '\u0000', '{"x":"\u0000"}') },
      )
    : operation.method === 'POST'
      ? fc.oneof(
          fc.constant(undefined),
          fc.uint8Array({ maxLength: 4096 }).map((a) => Buffer.from(a)),
        )
      : fc.constant(undefined);
  return fc.tuple(params, query, body).map(([p, q, b]) => {
    const search = new URLSearchParams(q as Record<string, string>).toString();
    const isJson = typeof b === 'string';
    return {
      method: operation.method,
      path: `${pathOf(operation, (name) => String((p as Record<string, string>)[name] ?? 'x') || 'x')}${search ? `?${search}` : ''}`,
      headers: {
        ...headers,
        ...(b !== undefined ? { 'content-type': isJson ? 'application/json' : 'application/octet-stream' } : {}),
      },
      ...(b !== undefined ? { body: b } : {}),
    };
  });
}

export interface FuzzReport {
  cases: number;
  /** Answers by status and code, e.g. `400 INVALID_INPUT ×12, 404 NOT_FOUND ×3`. */
  statuses: string;
  /** Each request that got a 5xx, leaked internals or another error shape. */
  failures: string[];
}

/** Runs `runs` generated requests per operation (fixed `seed`), sequentially, and reports. */
export async function runFuzz(options: {
  baseUrl: string;
  headers: Record<string, string>;
  operations: readonly Operation[];
  context: FuzzContext;
  runs: number;
  seed: number;
}): Promise<FuzzReport> {
  const statuses = new Map<string, number>();
  const failures: string[] = [];
  let cases = 0;
  for (const operation of options.operations) {
    await fc.assert(
      fc.asyncProperty(requestArbitrary(operation, options.context, options.headers), async (request) => {
        const response = await rawRequest(options.baseUrl, request);
        cases++;
        const key = `${response.status} ${response.json?.error?.code ?? ''}`.trim();
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        const sent = `${request.path} ${String(request.body ?? '')}`;
        const problem =
          response.status >= 500
            ? 'a 5xx'
            : (responseProblem(response, request.method) ?? secretIn(response.text, sent, options.context));
        if (problem) {
          failures.push(
            `${request.method} ${request.path.slice(0, 200)} ${String(request.body ?? '').slice(0, 200)} → ${response.status}: ${problem} ${response.text.slice(0, 200)}`,
          );
        }
      }),
      { seed: options.seed, numRuns: options.runs },
    );
  }
  const summary = [...statuses]
    .sort()
    .map(([key, n]) => `${key} ×${n}`)
    .join(', ');
  return { cases, statuses: summary, failures };
}

/** A secret `text` holds that what was `sent` did not, as a problem; else null. */
export function secretIn(text: string, sent: string, context: FuzzContext): string | null {
  const named = context.secrets.find((secret) => text.includes(secret) && !sent.includes(secret));
  if (named === undefined) return null;
  // A path is named in the failure; a token is not printed.
  return `the body holds a secret of the control plane (${named.startsWith('/') ? named : 'a token'})`;
}
