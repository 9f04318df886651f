import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** What each kind of file a Vite build writes is served as. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

interface UiFile {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * Every file of the built UI, read once, by its URL path. The page this process serves is the
 * one it started with, whole: a rebuild or an upgrade in place replaces the files on disk (new
 * asset names, the old ones gone), and a page read from disk then named assets this process
 * never listed — a blank page until a restart. A build is under a megabyte.
 */
function readUi(dir: string): Map<string, UiFile> {
  const files = new Map<string, UiFile>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const body = readFileSync(path);
    files.set(`/${relative(dir, path).split(sep).join('/')}`, {
      body,
      type: CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    });
  }
  return files;
}

/** Answers with one file of the UI: 304 when the client has it already. */
function sendUiFile(request: FastifyRequest, reply: FastifyReply, file: UiFile, cacheControl: string) {
  void reply
    .header('etag', file.etag)
    .header('cache-control', cacheControl)
    .header('x-content-type-options', 'nosniff');
  if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
  return reply.type(file.type).send(file.body);
}

/**
 * Serves the web UI (built by `vite build ui`) from memory (readUi), and index.html for every
 * other GET outside the API so that addresses like /vms/new load the page. Unknown API paths get
 * the API's own error shape. Without a built UI, pages explain how to build it; the API is
 * unaffected.
 */
export async function serveUi(
  app: FastifyInstance,
  options: { apiPrefix: string; dir?: string | null },
): Promise<void> {
  const dir = options.dir === undefined ? findUiDir() : options.dir;
  const files = dir ? readUi(dir) : new Map<string, UiFile>();
  const index = files.get('/index.html');
  for (const [path, file] of files) {
    if (file === index) continue;
    // Vite puts a content hash in every asset name: they never change under the same name.
    const cacheControl = path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    // Files, not API: left out of the OpenAPI document.
    app.get(path, { schema: { hide: true } }, (request, reply) => sendUiFile(request, reply, file, cacheControl));
  }

  const page = (request: FastifyRequest, reply: FastifyReply) => {
    void reply.header('content-security-policy', CSP).header('x-frame-options', 'DENY');
    if (index) return sendUiFile(request, reply, index, 'no-cache');
    return reply
      .status(503)
      .header('cache-control', 'no-cache')
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
    if (!isApi && !isFile && (request.method === 'GET' || request.method === 'HEAD')) return page(request, reply);
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
