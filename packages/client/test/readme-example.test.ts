/** The README's opening example, run as a reader would run it, against the built packages. */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runReadmeExample } from '../../../scripts/readme-example.js';

it('README example runs and prints what its comments say', async () => {
  const stdout = await runReadmeExample(join(import.meta.dirname, '..'));
  expect(stdout).toBe('hv-1 disconnected\n404 NOT_FOUND\n');
}, 150_000);
