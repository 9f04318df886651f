import fastJson from 'fast-json-stringify';
import type { FastifySerializerCompiler } from 'fastify';
import { z } from 'zod';

type JsonSchema = Record<string, unknown>;

/**
 * zod's `anyOf: [X, {type: 'null'}]` (a `.nullable()`) as fast-json-stringify's `nullable: true`,
 * which it writes without trying each branch; everything else as it is.
 */
function simplify(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(simplify);
  if (typeof schema !== 'object' || schema === null) return schema;
  const node = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, simplify(value)])) as JsonSchema;
  const anyOf = node.anyOf as JsonSchema[] | undefined;
  if (anyOf?.length === 2) {
    const nullIndex = anyOf.findIndex((branch) => branch.type === 'null');
    const other = anyOf[1 - nullIndex];
    if (nullIndex >= 0 && other && typeof other.type === 'string') {
      const { anyOf: _, ...rest } = node;
      return { ...rest, ...other, nullable: true };
    }
  }
  return node;
}

/**
 * The JSON Schema of a response's zod schema, as fast-json-stringify reads it. A date is a
 * date-time string, which fast-json-stringify writes from a Date as its ISO form (as JSON.stringify does).
 */
export function responseJsonSchema(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, {
    io: 'output',
    target: 'draft-7',
    unrepresentable: 'any',
    override: (ctx) => {
      if (ctx.zodSchema._zod.def.type === 'date')
        Object.assign(ctx.jsonSchema, { type: 'string', format: 'date-time' });
    },
  });
  return simplify(json) as JsonSchema;
}

/**
 * Serializes a route's answer with fast-json-stringify, compiled once from its zod response
 * schema: the hot listings are written without zod's per-answer check and JSON.stringify's walk.
 * Fields the schema does not list are dropped, so a response schema must list every field.
 */
export function fastSerializerCompiler<RouteSchema>(
  route: Parameters<FastifySerializerCompiler<RouteSchema>>[0],
): (data: unknown) => string {
  // Fastify hands a route's compiler the schema of one response status: here a zod schema.
  const schema = route.schema as unknown as z.ZodType;
  return fastJson(responseJsonSchema(schema) as unknown as Parameters<typeof fastJson>[0]);
}
