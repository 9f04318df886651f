import { readFileSync } from 'node:fs';
import { createLogger, defaultLogFormat, logDestination } from '@quantix/core';
import { Command, Option } from 'commander';
import { poolRootsOption, startNodeDaemon } from './node.js';
import { describeOption, type VirtType, virtTypeOption } from './options.js';

const program = new Command('quantix-node')
  .description('Quantix node daemon: connects to the control plane and runs this node’s pools, downloads and VMs')
  .configureHelp({ optionDescription: describeOption })
  .addOption(
    new Option(
      '--url <url>',
      'control plane URL (repeatable: one per replica, or one name with an address per replica; QUANTIX_URL takes them comma-separated)',
    )
      .env('QUANTIX_URL')
      .argParser((value: string, previous: string[] | undefined) => [
        ...(previous ?? []),
        ...value.split(',').filter((url) => url.trim() !== ''),
      ])
      .makeOptionMandatory(),
  )
  .addOption(
    new Option('--node-id <id>', 'this node’s id (from `quantix nodes add`)')
      .env('QUANTIX_NODE_ID')
      .makeOptionMandatory(),
  )
  .addOption(
    new Option('--token <token>', 'this node’s token (visible to other users in ps: prefer --token-file)').env(
      'QUANTIX_NODE_TOKEN',
    ),
  )
  .addOption(new Option('--token-file <file>', 'read this node’s token (from `quantix nodes add`) from this file'))
  .addOption(new Option('--hostname <name>', 'name reported to the control plane'))
  .addOption(new Option('--libvirt <uri>', 'libvirt URI, or "none"').default('qemu:///system'))
  .addOption(virtTypeOption())
  .addOption(new Option('--allow-source <address...>', 'private/loopback addresses downloads may come from (mirrors)'))
  .addOption(new Option('--mount-table <file>', 'read this file instead of /proc/self/mountinfo'))
  .addOption(
    new Option('--pool-recheck-interval <seconds>', 'check every pool again this often, reporting changes (0: never)')
      .env('QUANTIX_POOL_RECHECK_SECONDS')
      .default('30'),
  )
  .addOption(
    new Option(
      '--pool-root <dir>',
      'a directory pools may be in (repeatable; default /var/lib/quantix and /srv; env QUANTIX_POOL_ROOTS, colon-separated)',
    ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
  )
  .addOption(
    new Option('--log-level <level>', 'trace, debug, info, warn, error or fatal').default(
      process.env.QUANTIX_LOG_LEVEL ?? 'info',
    ),
  )
  .addOption(
    new Option(
      '--log-format <format>',
      'log lines as json, or pretty for people (default: pretty on a terminal, else json)',
    )
      .choices(['json', 'pretty'])
      .env('QUANTIX_LOG_FORMAT'),
  );

program.action(
  async (o: {
    url: string[];
    nodeId: string;
    token?: string;
    tokenFile?: string;
    hostname?: string;
    libvirt: string;
    virtType: VirtType;
    allowSource?: string[];
    mountTable?: string;
    poolRecheckInterval: string;
    poolRoot?: string[];
    logLevel: string;
    logFormat?: 'json' | 'pretty';
  }) => {
    const recheckSeconds = Number(o.poolRecheckInterval);
    if (!Number.isFinite(recheckSeconds) || recheckSeconds < 0) {
      throw new Error(`--pool-recheck-interval must be a number of seconds, not ${o.poolRecheckInterval}`);
    }
    const logger = createLogger(
      { name: 'quantix-node', level: o.logLevel },
      logDestination(o.logFormat ?? defaultLogFormat()),
    );
    if (o.token && program.getOptionValueSource('token') === 'cli') {
      logger.warn(
        'the node token is on the command line, where every user of this machine can read it (ps); use --token-file or QUANTIX_NODE_TOKEN',
      );
    }
    const token = o.tokenFile ? readFileSync(o.tokenFile, 'utf8').trim() : o.token;
    if (!token) throw new Error('no node token: give --token-file FILE (or QUANTIX_NODE_TOKEN)');
    const daemon = await startNodeDaemon({
      urls: o.url,
      nodeId: o.nodeId,
      token,
      ...(o.tokenFile ? { tokenFile: o.tokenFile } : {}),
      ...(o.hostname ? { hostname: o.hostname } : {}),
      libvirtUri: o.libvirt === 'none' ? null : o.libvirt,
      virtType: o.virtType,
      ...(o.allowSource ? { allowSourceAddresses: o.allowSource } : {}),
      ...(o.mountTable ? { mountTablePath: o.mountTable } : {}),
      poolRecheckIntervalMs: recheckSeconds * 1000,
      ...poolRootsOption(o.poolRoot, process.env.QUANTIX_POOL_ROOTS),
      logger,
    });
    if (daemon.hypervisorProblem) logger.warn(`no VMs on this node: ${daemon.hypervisorProblem}`);
    const stop = async (signal: string) => {
      logger.info({ signal }, 'stopping');
      await daemon.close();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
  },
);

program.parseAsync(process.argv).catch((error: Error) => {
  process.stderr.write(`error: ${error.message}\n`);
  process.exit(1);
});
