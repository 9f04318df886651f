// Plain Node, no transform: starts the built control plane and reads the web UI it serves.
import { createQuantix } from '@quantix/core';
import { startControlPlane } from '@quantix/example-control-plane';

const quantix = await createQuantix({ database: { client: 'pglite' } });
const cp = await startControlPlane({ quantix, apiToken: 'dist-token', stagingDir: process.argv[2] });
try {
  const page = await fetch(`${cp.url}/vms/new`);
  const html = await page.text();
  const script = /<script type="module" crossorigin src="([^"]+)"/.exec(html)?.[1];
  const asset = script ? await fetch(`${cp.url}${script}`) : null;
  // Read to the end: an unread body keeps the connection busy and the server from closing.
  const assetBytes = asset ? (await asset.arrayBuffer()).byteLength : 0;
  const api = await fetch(`${cp.url}/api/v1/no-such-route`, { headers: { authorization: 'Bearer dist-token' } });
  process.stdout.write(
    JSON.stringify({
      page: page.status,
      root: html.includes('<div id="root"></div>'),
      csp: page.headers.get('content-security-policy')?.startsWith("default-src 'self'") ?? false,
      script: Boolean(script),
      asset: asset?.status ?? null,
      assetType: asset?.headers.get('content-type') ?? null,
      assetBytes: assetBytes > 10_000,
      assetCache: asset?.headers.get('cache-control') ?? null,
      api: [api.status, (await api.json()).error?.code],
    }),
  );
} finally {
  await cp.close();
  await quantix.close();
}
