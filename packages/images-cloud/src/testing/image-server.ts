/**
 * A real HTTP server for download tests (node:http on loopback), exported as
 * `@quantix/images-cloud/testing` so other packages' tests can play a mirror: serves files from memory
 * with ETag, Last-Modified and Range/If-Range the way a mirror does, logs every request, and has
 * switches to misbehave the ways real servers do — ignore Range, ignore If-Range, change a
 * file's ETag, drop the connection mid-way, send wrong bytes, go slowly, redirect.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServedFile {
  data: Buffer;
  etag: string | null;
  lastModified: string | null;
}

export interface RequestRecord {
  method: string;
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  /** Body bytes written to the socket for this request. */
  bytesSent: number;
  /** The server sent the whole answer (false when it dropped the connection or the client left). */
  completed: boolean;
}

export interface ServerBehaviour {
  /** Answer every request with the whole file (200), as servers without range support do. */
  ignoreRange: boolean;
  /** Honour Range even when If-Range no longer matches (a broken server); the answer carries the new ETag. */
  ignoreIfRange: boolean;
  /** Drop the connection after this many body bytes of the next answer that gets that far; reset once used. */
  dropAfterBytes: number | null;
  /** Drop every answer (not just the next) after this many body bytes. */
  dropEveryAfterBytes: number | null;
  /** Paths whose bytes are sent with every bit flipped: they differ from what the checksum file says. */
  corruptPaths: string[];
  /** Pace bodies to this rate. */
  bytesPerSecond: number | null;
  /** Send a whole file without Content-Length (chunked), as servers streaming generated content do. */
  hideLength: boolean;
  /** Path → Location for 302 answers. */
  redirects: Record<string, string>;
  /** Path → status code to answer with instead of the file. */
  statusOverrides: Record<string, number>;
}

export interface ImageServer {
  readonly url: string;
  readonly port: number;
  readonly requests: RequestRecord[];
  readonly behaviour: ServerBehaviour;
  /** Serves `data` at `path`; a new ETag unless one is given. */
  setFile(path: string, data: Buffer | string, options?: { etag?: string | null; lastModified?: string | null }): void;
  file(path: string): ServedFile | undefined;
  /** Forgets the request log and puts every switch back to a well-behaved server. */
  reset(): void;
  /** Requests for one path. */
  requestsFor(path: string): RequestRecord[];
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;

function etagOf(data: Buffer, generation: number): string {
  return `"${createHash('sha1').update(data).digest('hex').slice(0, 16)}-${generation}"`;
}

function parseRange(header: string | undefined, length: number): { start: number; end: number } | 'invalid' | null {
  if (!header) return null;
  const match = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!match) return 'invalid';
  const start = Number(match[1]);
  const end = match[2] === '' ? length - 1 : Math.min(Number(match[2]), length - 1);
  if (start >= length || end < start) return 'invalid';
  return { start, end };
}

export async function startImageServer(options: { host?: string } = {}): Promise<ImageServer> {
  const files = new Map<string, ServedFile>();
  const requests: RequestRecord[] = [];
  let generation = 0;
  const wellBehaved = (): ServerBehaviour => ({
    ignoreRange: false,
    ignoreIfRange: false,
    dropAfterBytes: null,
    dropEveryAfterBytes: null,
    corruptPaths: [],
    bytesPerSecond: null,
    hideLength: false,
    redirects: {},
    statusOverrides: {},
  });
  const behaviour = wellBehaved();

  async function sendBody(
    req: IncomingMessage,
    res: ServerResponse,
    record: RequestRecord,
    data: Buffer,
    start: number,
    end: number,
  ): Promise<void> {
    const oneShot = behaviour.dropAfterBytes !== null && behaviour.dropAfterBytes < end + 1 - start;
    const dropAfter = oneShot ? behaviour.dropAfterBytes : behaviour.dropEveryAfterBytes;
    if (oneShot) behaviour.dropAfterBytes = null;
    const corrupt = behaviour.corruptPaths.includes(record.path);
    let gone = false;
    res.once('close', () => {
      gone = true;
    });
    let flushed: Promise<void> = Promise.resolve();
    let position = start;
    while (position <= end && !gone) {
      let size = Math.min(CHUNK, end + 1 - position);
      if (dropAfter !== null) size = Math.min(size, dropAfter - record.bytesSent);
      if (size <= 0) {
        // Mid-body, as a crashing server or a cut cable does it — after what was sent reached
        // the socket, so the client really has `bytesSent` bytes.
        await flushed;
        req.socket.destroy();
        return;
      }
      let chunk = data.subarray(position, position + size);
      if (corrupt) chunk = Buffer.from(chunk.map((byte) => byte ^ 0xff));
      flushed = new Promise((resolve) => {
        if (!res.write(chunk, () => resolve())) {
          void drainedOrClosed(res).then(() => resolve());
        }
      });
      record.bytesSent += size;
      position += size;
      if (res.writableNeedDrain && !gone) await drainedOrClosed(res);
      if (behaviour.bytesPerSecond) await sleep((size / behaviour.bytesPerSecond) * 1000);
    }
    if (!gone) {
      res.end();
      record.completed = true;
    }
  }

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path,
      range: req.headers.range ?? null,
      ifRange: (req.headers['if-range'] as string | undefined) ?? null,
      status: 0,
      bytesSent: 0,
      completed: false,
    };
    requests.push(record);
    const finish = (status: number, headers: http.OutgoingHttpHeaders = {}, body = '') => {
      record.status = status;
      res.writeHead(status, headers);
      res.end(body);
      record.completed = true;
    };
    const redirect = behaviour.redirects[path];
    if (redirect) return finish(302, { location: redirect });
    const override = behaviour.statusOverrides[path];
    if (override) return finish(override, { 'content-type': 'text/plain' }, `status ${override}\n`);
    const file = files.get(path);
    if (!file) return finish(404, { 'content-type': 'text/plain' }, 'not found\n');

    const length = file.data.length;
    const validators: http.OutgoingHttpHeaders = {
      'accept-ranges': behaviour.ignoreRange ? 'none' : 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (file.etag) validators.etag = file.etag;
    if (file.lastModified) validators['last-modified'] = file.lastModified;

    let range = behaviour.ignoreRange ? null : parseRange(req.headers.range, length);
    const ifRange = req.headers['if-range'] as string | undefined;
    if (range && ifRange && !behaviour.ignoreIfRange && ifRange !== file.etag && ifRange !== file.lastModified) {
      range = null; // the validator no longer matches: the whole (new) file, as RFC 9110 says
    }
    if (range === 'invalid') {
      return finish(416, { ...validators, 'content-range': `bytes */${length}` });
    }
    if (req.method === 'HEAD') return finish(200, { ...validators, 'content-length': length });
    if (range) {
      record.status = 206;
      res.writeHead(206, {
        ...validators,
        'content-length': range.end - range.start + 1,
        'content-range': `bytes ${range.start}-${range.end}/${length}`,
      });
      void sendBody(req, res, record, file.data, range.start, range.end);
      return;
    }
    record.status = 200;
    res.writeHead(200, behaviour.hideLength ? validators : { ...validators, 'content-length': length });
    void sendBody(req, res, record, file.data, 0, length - 1);
  });
  server.keepAliveTimeout = 1000;
  server.listen(0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    behaviour,
    setFile(path, data, fileOptions = {}) {
      generation += 1;
      const buffer = typeof data === 'string' ? Buffer.from(data) : data;
      files.set(path, {
        data: buffer,
        etag: fileOptions.etag === undefined ? etagOf(buffer, generation) : fileOptions.etag,
        lastModified:
          fileOptions.lastModified === undefined
            ? new Date(Date.UTC(2026, 0, 1, 0, 0, generation)).toUTCString()
            : fileOptions.lastModified,
      });
    },
    file: (path) => files.get(path),
    reset() {
      requests.length = 0;
      Object.assign(behaviour, wellBehaved());
    },
    requestsFor: (path) => requests.filter((r) => r.path === path),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Waits for a response to drain or close, and leaves no listener behind: a race of two `once`
 * promises keeps the loser's listener, one per chunk (MaxListenersExceededWarning on slow sends).
 */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
