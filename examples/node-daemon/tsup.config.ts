import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', main: 'src/main.ts', options: 'src/options.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts', options: 'src/options.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
