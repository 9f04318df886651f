// The peer of bench/upload: a plain PUT endpoint, in its own process, that streams each request
// body into DIR/<name> and answers 201 — what `curl -T FILE URL` uploads to. Prints "READY <port>".
//   node bench/__fixtures__/put-server.mjs DIR
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const [dir] = process.argv.slice(2);
const server = http.createServer((request, response) => {
  if (request.method !== 'PUT') {
    response.writeHead(405).end();
    return;
  }
  const name = basename(decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname));
  pipeline(request, createWriteStream(join(dir, name), { flags: 'wx' })).then(
    () => response.writeHead(201).end(),
    (error) => response.writeHead(500).end(String(error)),
  );
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`READY ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
