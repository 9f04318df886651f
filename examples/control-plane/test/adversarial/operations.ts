/**
 * The API's operations, read from its own OpenAPI document, joined with the server's route
 * table so that nothing it answers is left out (websocket routes are not in the document).
 */
import type { RouteAuth, RouteInfo } from '../../src/control-plane.js';

export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  minItems?: number;
  maxItems?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  nullable?: boolean;
  default?: unknown;
  examples?: unknown[];
  /** OpenAPI 3.0's single example (what zod's `examples` become in the document). */
  example?: unknown;
}

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: JsonSchema;
}

export interface Operation {
  method: string;
  /** As the document writes it: /api/v1/pools/{id}. */
  template: string;
  auth: RouteAuth;
  websocket: boolean;
  parameters: Parameter[];
  body: JsonSchema | null;
}

interface OpenApiOperation {
  security?: Record<string, unknown>[];
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}

interface OpenApiDocument {
  security?: Record<string, unknown>[];
  paths: Record<string, Record<string, OpenApiOperation>>;
}

const authOf = (security: Record<string, unknown>[] | undefined): RouteAuth => {
  if (!security || security.length === 0) return security ? 'public' : 'api';
  const first = security[0] ?? {};
  if ('nodeToken' in first) return 'node';
  if ('uploadToken' in first) return 'upload';
  if ('consoleTicket' in first) return 'console';
  if ('eventTicket' in first) return 'events';
  return 'api';
};

/** `/api/v1/pools/:id` → `/api/v1/pools/{id}`. */
export const templateOf = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/**
 * Operations of the document, plus the routes it leaves out (websockets) taken from the route
 * table. Throws when the document and the server disagree, so that neither can drift.
 */
export function operationsOf(document: OpenApiDocument, routes: readonly RouteInfo[], prefix: string): Operation[] {
  const operations: Operation[] = [];
  for (const [template, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const jsonBody = operation.requestBody?.content?.['application/json']?.schema ?? null;
      operations.push({
        method: method.toUpperCase(),
        template,
        auth: authOf(operation.security ?? document.security),
        websocket: false,
        parameters: operation.parameters ?? [],
        body: jsonBody,
      });
    }
  }
  const documented = new Set(operations.map((o) => `${o.method} ${o.template}`));
  const apiRoutes = routes.filter((r) => r.url.startsWith(prefix));
  for (const route of apiRoutes) {
    const key = `${route.method} ${templateOf(route.url)}`;
    if (documented.has(key)) continue;
    if (!route.websocket) throw new Error(`${key} is served but missing from the OpenAPI document`);
    const params = [...route.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({
      name: m[1] as string,
      in: 'path' as const,
      required: true,
      schema: { type: 'string' },
    }));
    operations.push({ ...route, template: templateOf(route.url), parameters: params, body: null });
  }
  const served = new Set(apiRoutes.map((r) => `${r.method} ${templateOf(r.url)}`));
  for (const key of documented) if (!served.has(key)) throw new Error(`${key} is documented but not served`);
  // What the document says about who may call must be what the server enforces.
  for (const route of apiRoutes) {
    const operation = operations.find((o) => o.method === route.method && o.template === templateOf(route.url));
    if (operation && operation.auth !== route.auth) {
      throw new Error(`${route.method} ${route.url}: the document says ${operation.auth}, the server ${route.auth}`);
    }
  }
  return operations;
}

/** The operation's path with its parameters filled in by `paramValue`. */
export function pathOf(operation: Operation, paramValue: (name: string) => string): string {
  return operation.template.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(paramValue(name)));
}

/**
 * Where in `schema` an object with named fields takes fields it does not name (no
 * `additionalProperties: false`): `body.resources`, `body.networks[]`. A map (`additionalProperties`
 * a schema, e.g. labels) is not such a place.
 */
export function lenientObjectsOf(schema: JsonSchema | null, path = 'body'): string[] {
  if (!schema) return [];
  const found: string[] = [];
  if (schema.properties && schema.additionalProperties !== false && typeof schema.additionalProperties !== 'object') {
    found.push(path);
  }
  for (const [key, field] of Object.entries(schema.properties ?? {}))
    found.push(...lenientObjectsOf(field, `${path}.${key}`));
  if (schema.items) found.push(...lenientObjectsOf(schema.items, `${path}[]`));
  for (const variant of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) {
    found.push(...lenientObjectsOf(variant, path));
  }
  return found;
}
