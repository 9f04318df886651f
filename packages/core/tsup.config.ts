import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', light: 'src/light.ts', testing: 'src/testing/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // Database drivers are loaded lazily by name and stay external, like knex's own dialects.
  external: ['pg', '@electric-sql/pglite', 'knex-pglite'],
});
