// One fetch through the BUILT @quantix/images-cloud in a plain node process (no tsx, no test
// runner), so that its peak memory is the fetcher's own. Prints one JSON line:
// { ms, peakRss, maxRss, sizeBytes, checksum }.
//   node bench/__fixtures__/fetch-once.mjs URL CHECKSUM_URL DEST
import { HttpImageFetcher } from '@quantix/images-cloud';

const [sourceUrl, checksumUrl, destinationPath] = process.argv.slice(2);
let peak = process.memoryUsage.rss();
const timer = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
}, 20);
const baseline = process.memoryUsage.rss();
const fetcher = new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } });
const start = performance.now();
const result = await fetcher.fetch({ sourceUrl, checksumUrl, destinationPath });
const ms = performance.now() - start;
clearInterval(timer);
peak = Math.max(peak, process.memoryUsage.rss());
process.stdout.write(
  `${JSON.stringify({
    ms,
    baselineRss: baseline,
    peakRss: peak,
    maxRss: process.resourceUsage().maxRSS * 1024,
    sizeBytes: result.sizeBytes,
    checksum: result.checksum.value,
  })}\n`,
);
