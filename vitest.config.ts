import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/**/*.test.ts',
      'examples/*/src/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'bench/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**', '**/__fixtures__/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: keep parallel files to what the machine and PostgreSQL can take.
    maxWorkers: 2,
    env: { QUANTIX_LOG_LEVEL: 'silent' },
  },
});
