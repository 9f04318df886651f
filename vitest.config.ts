import { defineConfig } from 'vitest/config';

// Tests that own a machine-wide service (the one ganesha on port 2049, which some tests stop on
// purpose) or start whole systems run after the rest, one file at a time.
const exclusive = [
  'packages/storage-nfs/src/**/*.integration.test.ts',
  'examples/*/test/**/*.e2e.test.ts',
  'bench/**/*.test.ts',
];

export default defineConfig({
  // Workspace packages resolve to their TypeScript source (the `quantix-source` export condition
  // each package.json lists first), so a change in core is seen by every package's tests without
  // a build. Node tests run in Vite's server environment, whose conditions are `ssr.resolve`'s;
  // vitest also hands them to its workers as --conditions. Plain Node (dist tests, built bins)
  // never sets the condition and still loads dist. The rest is vitest's own default for the
  // server environment (Vite's defaultServerConditions without `module`), which this replaces.
  ssr: { resolve: { conditions: ['quantix-source', 'node', 'development|production'] } },
  test: {
    exclude: ['**/node_modules/**', '**/dist/**', '**/__fixtures__/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { QUANTIX_LOG_LEVEL: 'silent' },
    // Checks, once, that the machine has every program and locale the tests use.
    globalSetup: ['./scripts/test-tools.global-setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: [
            'packages/*/src/**/*.test.ts',
            'packages/*/test/**/*.test.ts',
            'examples/*/src/**/*.test.ts',
            'examples/*/test/**/*.test.ts',
            'scripts/*.test.ts',
          ],
          exclude: ['**/node_modules/**', '**/dist/**', '**/__fixtures__/**', ...exclusive],
          // Two cores: keep parallel files to what the machine and PostgreSQL can take.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'exclusive',
          include: exclusive,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
