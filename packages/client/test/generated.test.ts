/**
 * src/generated.ts is what scripts/generate.ts makes of openapi.json, so the client's types are
 * those of the API description it ships with. (That openapi.json is the one the control plane
 * serves is checked by examples/control-plane/src/http/openapi.integration.test.ts.)
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { documentFile, generatedFile, generatedSource } from '../scripts/generate.js';

describe('generated client types', () => {
  it('are current with openapi.json (else: npm run generate -w @quantix/client)', async () => {
    const expected = await generatedSource(await readFile(documentFile, 'utf8'));
    expect(await readFile(generatedFile, 'utf8')).toBe(expected);
  });
});
