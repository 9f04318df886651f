// Uses the BUILT package through its exports map, as a CommonJS consumer would.
const { CommandRunnerToken, createQuantix, HypervisorToken, isQuantixError } = require('@quantix/core');
const { buildDomainXml, createNodeRuntimePlugin, quoteArgv, SshCommandRunner } = require('@quantix/node-runtime');

(async () => {
  const quantix = await createQuantix({
    database: { client: 'pglite' },
    plugins: [createNodeRuntimePlugin({ runner: { kind: 'local' }, libvirt: { uri: 'test:///default' } })],
  });
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
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
