import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The UI is built into the package's dist/ui, next to the server bundle that serves it.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
  // `vite ui` for work on the pages: the API comes from a running control plane.
  server: {
    proxy: { '/api': process.env.QUANTIX_URL ?? 'http://127.0.0.1:8080' },
  },
});
