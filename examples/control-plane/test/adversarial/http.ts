/**
 * Raw HTTP for probes: the request line carries the path exactly as given. `fetch` and `URL`
 * normalise (`/./`, `..`, some escapes) before sending, which would hide the very spellings
 * the probes are about.
 */
import http from 'node:http';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed body when it is JSON, else undefined. */
  // biome-ignore lint/suspicious/noExplicitAny: probe answers are checked field by field
  json: any;
}

export interface RawRequest {
  method: string;
  /** Sent verbatim as the request target. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

export function rawRequest(baseUrl: string, request: RawRequest, timeoutMs = 30_000): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: request.method,
        path: request.path,
        headers: {
          ...(request.body !== undefined ? { 'content-length': String(Buffer.byteLength(request.body)) } : {}),
          ...request.headers,
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          if (String(res.headers['content-type'] ?? '').includes('json') && text) {
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${request.method} ${request.path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (request.body !== undefined) req.write(request.body);
    req.end();
  });
}

/** SQL statements and stack frames: neither may ever reach a client. */
const LEAKS = [
  /\b(select\s.+\sfrom|insert\s+into|update\s+"?\w+"?\s+set|delete\s+from)\b/i,
  /\n\s+at\s.+:\d+:\d+/,
  /node_modules\//,
];

/** What is wrong with a response as any client would see it, or null: 5xx, leaks, another error shape. */
export function responseProblem(response: RawResponse, method = 'GET'): string | null {
  for (const pattern of LEAKS) if (pattern.test(response.text)) return `the body leaks internals (${pattern})`;
  // An answer to HEAD has no body (HTTP), so no error shape either: its status is what it says.
  if (method === 'HEAD') return response.text === '' ? null : 'a HEAD answer with a body';
  if (response.status >= 400) {
    const error = response.json?.error;
    if (typeof error?.code !== 'string' || typeof error?.message !== 'string' || typeof error?.details !== 'object') {
      return `an error without the one error shape: ${response.text.slice(0, 200)}`;
    }
  }
  return null;
}
