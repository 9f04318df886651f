// Child process of bench/replicas: the HTTP load generator (autocannon), in a process of its own so
// it measures the replicas and not the bench's event loop. Connections go round-robin over the URLs.
//   node load.mjs <config JSON: { urls, path, token, connections, seconds }>
// Prints one JSON line: requests per second (2xx), p50 and p99 latency in ms, errors, non-2xx.
import autocannon from 'autocannon';

const { urls, path, token, connections, seconds } = JSON.parse(process.argv[2]);
const result = await autocannon({
  url: urls.map((url) => `${url}${path}`),
  connections,
  duration: seconds,
  headers: { authorization: `Bearer ${token}` },
});
const ok = result['2xx'];
process.stdout.write(
  `${JSON.stringify({
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    requests: ok,
  })}\n`,
);
