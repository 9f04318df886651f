// The peer-neutral file server of bench/download, run in its own process so that the bench
// process measures only the fetcher. Creates FILE of SIZE bytes once (random-ish: one random
// MiB, each copy stamped with its index so no two MiB are alike) with a SHA256SUMS beside it,
// then serves both over loopback with Content-Length, ETag and Range, and prints "READY <port>".
//   node bench/__fixtures__/file-server.mjs FILE SIZE
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import http from 'node:http';
import { basename } from 'node:path';

const [file, sizeText] = process.argv.slice(2);
const size = Number(sizeText);
const MiB = 1024 * 1024;
const sumsFile = `${file}.SHA256SUMS`;

async function create() {
  const block = randomBytes(MiB);
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    for (let offset = 0; offset < size; offset += MiB) {
      block.writeBigUInt64LE(BigInt(offset), 0);
      const chunk = block.subarray(0, Math.min(MiB, size - offset));
      hash.update(chunk);
      await handle.write(chunk, 0, chunk.length, offset);
    }
  } finally {
    await handle.close();
  }
  writeFileSync(sumsFile, `${hash.digest('hex')} *${basename(file)}\n`);
}

if (!existsSync(file) || statSync(file).size !== size || !existsSync(sumsFile)) await create();
const sums = readFileSync(sumsFile);
const etag = `"${statSync(file).mtimeMs.toString(16)}-${size.toString(16)}"`;

const server = http.createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path === '/SHA256SUMS') {
    res.writeHead(200, { 'content-length': sums.length, 'content-type': 'text/plain' });
    res.end(sums);
    return;
  }
  if (path !== `/${basename(file)}`) {
    res.writeHead(404);
    res.end();
    return;
  }
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = match && (!req.headers['if-range'] || req.headers['if-range'] === etag) ? Number(match[1]) : 0;
  const headers = { 'content-length': size - start, etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  if (start > 0) headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
  res.writeHead(start > 0 ? 206 : 200, headers);
  createReadStream(file, { start, highWaterMark: MiB }).pipe(res);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
