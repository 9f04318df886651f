import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

// The page talks to this same origin only (its console WebSockets too). Scripts come from this
// origin alone; styles may also be inline because the console's terminal (xterm.js) writes its
// theme into <style> elements at run time — a style cannot run code.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * Where the built UI is: `ui/` beside the bundle (dist/ui from dist/index.js), or the
 * package's dist/ui when the control plane runs from its sources (tsx, vitest).
 */
export function findUiDir(): string | null {
  for (const relative of ['./ui/', '../../dist/ui/']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return null;
}

/**
 * Serves the web UI (built by `vite build ui`) as static files, and index.html for every other
 * GET outside the API so that addresses like /vms/new load the page. Unknown API paths get the
 * API's own error shape. Without a built UI, pages explain how to build it; the API is unaffected.
 */
export async function serveUi(
  app: FastifyInstance,
  options: { apiPrefix: string; dir?: string | null },
): Promise<void> {
  const dir = options.dir === undefined ? findUiDir() : options.dir;
  if (dir) {
    await app.register(fastifyStatic, {
      root: dir,
      prefix: '/',
      // Files are listed once at start-up, so every path that is not a file reaches the fallback.
      wildcard: false,
      index: false,
      setHeaders(reply, path) {
        // Vite puts a content hash in every asset name: they never change under the same name.
        void reply.header(
          'cache-control',
          path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        );
        void reply.header('x-content-type-options', 'nosniff');
      },
    });
  }

  const page = (reply: FastifyReply) => {
    void reply
      .header('content-security-policy', CSP)
      .header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache');
    if (dir) return reply.sendFile('index.html');
    return reply
      .status(503)
      .type('text/html; charset=utf-8')
      .send(
        '<!doctype html><title>Quantix</title><h1>The web UI is not built</h1>' +
          '<p>Run <code>npm run build -w @quantix/example-control-plane</code>. ' +
          `The API is at <a href="${options.apiPrefix}/openapi.json">${options.apiPrefix}</a>.</p>`,
      );
  };

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '';
    // Any spelling of an API path (encoded, doubled slashes, other case) is an API miss, never
    // the page: the page would answer 200 to what a client meant as an API call.
    const isApi = looksLikeApi(path, options.apiPrefix);
    // A missing file (an old asset name, favicon.ico) is a 404, not the page under its name.
    const isFile = /\.[A-Za-z0-9]+$/.test(path);
    if (!isApi && !isFile && (request.method === 'GET' || request.method === 'HEAD')) return page(reply);
    return reply.status(404).send({
      error: { code: 'NOT_FOUND', message: `No route ${request.method} ${path}`, details: {} },
    });
  });
}

/** Whether `path`, decoded, lower-cased and with `.` segments and repeated slashes removed, is under `prefix`. */
export function looksLikeApi(path: string, prefix: string): boolean {
  let decoded = path;
  for (let i = 0; i < 3; i++) {
    try {
      const next = decodeURIComponent(decoded);
      if (next === decoded) break;
      decoded = next;
    } catch {
      break;
    }
  }
  // As a lenient server or proxy might read it: one case, no empty or `.` segments, `..` applied.
  const segments: string[] = [];
  for (const segment of decoded.toLowerCase().split(/[/\\]+/)) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `/${segments.join('/')}`;
  const root = prefix.toLowerCase().split('/').filter(Boolean)[0] ?? '';
  return normalized === `/${root}` || normalized.startsWith(`/${root}/`) || normalized.startsWith(`/${root};`);
}
