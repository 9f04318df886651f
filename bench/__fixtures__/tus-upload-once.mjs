// One tus upload (tus-js-client with the CLI's file reader, as `quantix images upload` sends) of FILE into pool `local` as
// NAME, timed inside this process from the creation to the answer of the last PATCH (which
// includes the server's SHA-256 and ISO read); prints {"ms":…}. Process start-up is left out,
// so the figure is the protocol's and the server's, not node's.
//   node bench/__fixtures__/tus-upload-once.mjs URL TOKEN FILE NAME
import { createReadStream, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { tusFileReader } from '@quantix/example-control-plane';
import { Upload } from 'tus-js-client';

const [url, token, file, name] = process.argv.slice(2);
const size = statSync(file).size;
const start = performance.now();
const upload = new Upload(createReadStream(file), {
  endpoint: `${url}/api/v1/uploads/tus`,
  fileReader: tusFileReader(file, size),
  uploadSize: size,
  metadata: { poolId: 'local', name, kind: 'iso' },
  headers: { authorization: `Bearer ${token}` },
  retryDelays: null,
  onSuccess: () => process.stdout.write(`${JSON.stringify({ ms: performance.now() - start })}\n`),
  onError: (error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  },
});
upload.start();
