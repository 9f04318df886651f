// Uses the BUILT package through its exports map, as an ESM consumer would.
import { CommandRunnerToken, createQuantix, HypervisorToken, isQuantixError } from '@quantix/core';
import { buildDomainXml, createNodeRuntimePlugin, quoteArgv, SshCommandRunner } from '@quantix/node-runtime';

const quantix = await createQuantix({
  database: { client: 'pglite' },
  plugins: [createNodeRuntimePlugin({ runner: { kind: 'local' }, libvirt: { uri: 'test:///default' } })],
});
// test:///default is libvirt's built-in test driver: one domain named "test", no daemon needed.
const domains = await quantix.get(HypervisorToken).list();
const target = quantix.get(CommandRunnerToken).target;
let refused = null;
try {
  new SshCommandRunner({ host: 'h', username: 'u', privateKey: 'k', hostKey: { fingerprint: 'MD5:00' } });
} catch (error) {
  refused = isQuantixError(error) ? error.code : String(error);
}
await quantix.close();
process.stdout.write(
  JSON.stringify({
    format: typeof require === 'undefined' ? 'esm' : 'cjs',
    target,
    domains: domains.map((d) => `${d.name}:${d.state}`),
    quoted: quoteArgv(['echo', "it's"]),
    xml: buildDomainXml({ name: 'dist', memoryMiB: 64, vcpus: 1 }).includes('<name>dist</name>'),
    refused,
  }),
);
