import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // ssh2 has optional native parts (cpu-features); it stays an ordinary dependency, not bundled.
  external: ['ssh2'],
});
