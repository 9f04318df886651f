import { describeOption, type VirtType, virtTypeOption } from '@quantix/example-node-daemon/options';
import { Command, Option } from 'commander';
import { apiCommands, reportError, warnArgvSecret } from './commands.js';

const POOL_ROOT_HELP = 'a directory pools may be in (repeatable; env QUANTIX_POOL_ROOTS, colon-separated)';
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];
const logFormatOption = () =>
  new Option(
    '--log-format <format>',
    'log lines as json, or pretty for people (default: pretty on a terminal, else json)',
  )
    .choices(['json', 'pretty'])
    .env('QUANTIX_LOG_FORMAT');

const rescanSecondsOption = () =>
  new Option(
    '--rescan-seconds <n>',
    'how often every pool is scanned again, for ISOs and disk images added or removed by hand (0: only after a node connects and on `images rescan`; default 300)',
  ).env('QUANTIX_RESCAN_SECONDS');

const vmStateSecondsOption = () =>
  new Option(
    '--vm-state-seconds <n>',
    "how often VMs' records are checked against the hypervisor, for guests that powered off and domains changed outside Quantix; a node's VMs are checked when it connects too (0: never; default 30)",
  ).env('QUANTIX_VM_STATE_SECONDS');

const vmStopSecondsOption = () =>
  new Option(
    '--vm-stop-seconds <n>',
    'how long a VM stop waits for the guest to power off after the ACPI shutdown, when the request gives no timeout (`vms stop --timeout`); then it fails, or powers off with force (default 60)',
  ).env('QUANTIX_VM_STOP_SECONDS');

/** The `quantix` command line: every command, option and description (main.ts runs it). */
export function buildProgram(): Command {
  const program = new Command('quantix')
    .description('Quantix: images, storage pools, nodes and VMs')
    .showHelpAfterError()
    // Commander's help shows a required option like any other; every command's says which are.
    .configureHelp({ optionDescription: describeOption })
    // Exit codes: 0 done, 1 failed, 2 usage (an unknown command or option, a missing or bad argument).
    // Subcommands inherit this; commander has already printed its message.
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));

  program
    .command('up')
    .description('all-in-one: control plane + local node on embedded PGlite in ./.quantix')
    .option('--data-dir <dir>', 'state directory', '.quantix')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port', '8080')
    .option('--libvirt <uri>', 'libvirt URI for the local node, or "none"', 'qemu:///system')
    .option('--catalog <file>', 'a JSON file of extra catalog entries')
    .option(
      '--pool-root <dir>',
      `${POOL_ROOT_HELP}; <data-dir>/pools always, default also /var/lib/quantix and /srv`,
      collect,
    )
    .option(
      '--allow-source <address...>',
      'private/loopback addresses or ranges (CIDR) downloads and imports may come from: a mirror on your network',
    )
    .addOption(virtTypeOption())
    .addOption(rescanSecondsOption())
    .addOption(vmStateSecondsOption())
    .addOption(vmStopSecondsOption())
    .addOption(logFormatOption())
    .action(
      async (
        options: {
          dataDir: string;
          host: string;
          port: string;
          libvirt: string;
          virtType: VirtType;
          catalog?: string;
          poolRoot?: string[];
          allowSource?: string[];
          logFormat?: 'json' | 'pretty';
        },
        command: Command,
      ) => {
        const { runAllInOne } = await import('./up.js');
        await runAllInOne({
          dataDir: options.dataDir,
          host: options.host,
          port: Number(options.port),
          libvirtUri: options.libvirt,
          virtType: options.virtType,
          catalogFile: options.catalog,
          poolRoots: options.poolRoot,
          allowSourceAddresses: options.allowSource,
          logFormat: options.logFormat,
          rescanSeconds: flagValue(command, 'rescanSeconds', '--rescan-seconds', 'QUANTIX_RESCAN_SECONDS'),
          vmStateSeconds: flagValue(command, 'vmStateSeconds', '--vm-state-seconds', 'QUANTIX_VM_STATE_SECONDS'),
          vmStopSeconds: flagValue(command, 'vmStopSeconds', '--vm-stop-seconds', 'QUANTIX_VM_STOP_SECONDS'),
        }).catch(exitAtOnce);
      },
    );

  program
    .command('serve')
    .description('control plane only (node daemons connect to it); PostgreSQL from QUANTIX_DATABASE_URL')
    .option('--host <host>', 'listen address', '0.0.0.0')
    .option('--port <port>', 'listen port', '8080')
    .option('--database-url <url>', 'postgres://… (default: QUANTIX_DATABASE_URL, else PGlite in ./.quantix/db)')
    .option('--catalog <file>', 'a JSON file of extra catalog entries')
    .option(
      '--api-token-file <file>',
      'the API token clients must send, read from this file (or QUANTIX_API_TOKEN; else one is made)',
    )
    .option('--data-dir <dir>', 'state directory: credentials, staged uploads, the embedded database', '.quantix')
    .option('--database-timeout <ms>', 'bound on each database statement (and on connecting); then 503', '30000')
    .option('--pool-root <dir>', `${POOL_ROOT_HELP}; default /var/lib/quantix and /srv`, collect)
    .addOption(
      new Option(
        '--replica-id <id>',
        'this replica’s name among those sharing the database; keep it across restarts (1–64 of A-Z a-z 0-9 . _ -; default a new one per start)',
      ).env('QUANTIX_REPLICA_ID'),
    )
    .addOption(
      new Option(
        '--replica-url <url>',
        'the http(s) URL other replicas and nodes reach this replica at (also where nodes fetch uploads, unless QUANTIX_PUBLIC_URL)',
      ).env('QUANTIX_REPLICA_URL'),
    )
    .option(
      '--lease-seconds <n>',
      'how long this replica’s node leases last unrenewed: how soon its nodes may move after it dies (3–300)',
      '15',
    )
    .option(
      '--allow-source <address...>',
      'private/loopback addresses the control plane may read checksum files from (mirrors of followed golden images)',
    )
    .addOption(rescanSecondsOption())
    .addOption(vmStateSecondsOption())
    .addOption(vmStopSecondsOption())
    .addOption(logFormatOption())
    .action(
      async (
        options: {
          host: string;
          port: string;
          databaseUrl?: string;
          catalog?: string;
          apiTokenFile?: string;
          dataDir: string;
          databaseTimeout: string;
          poolRoot?: string[];
          replicaId?: string;
          replicaUrl?: string;
          leaseSeconds: string;
          allowSource?: string[];
          logFormat?: 'json' | 'pretty';
          rescanSeconds?: string;
        },
        command: Command,
      ) => {
        if (options.databaseUrl && /:\/\/[^/@]*:[^/@]*@/.test(options.databaseUrl)) {
          warnArgvSecret('--database-url carries a password', 'QUANTIX_DATABASE_URL');
        }
        const { runServe } = await import('./up.js');
        await runServe({
          host: options.host,
          port: Number(options.port),
          databaseUrl: options.databaseUrl ?? process.env.QUANTIX_DATABASE_URL,
          catalogFile: options.catalog,
          tokenFile: options.apiTokenFile,
          dataDir: options.dataDir,
          databaseTimeoutMs: Number(options.databaseTimeout),
          poolRoots: options.poolRoot,
          logFormat: options.logFormat,
          allowSourceAddresses: options.allowSource,
          rescanSeconds: flagValue(command, 'rescanSeconds', '--rescan-seconds', 'QUANTIX_RESCAN_SECONDS'),
          vmStateSeconds: flagValue(command, 'vmStateSeconds', '--vm-state-seconds', 'QUANTIX_VM_STATE_SECONDS'),
          vmStopSeconds: flagValue(command, 'vmStopSeconds', '--vm-stop-seconds', 'QUANTIX_VM_STOP_SECONDS'),
          replica: {
            id: flagValue(command, 'replicaId', '--replica-id', 'QUANTIX_REPLICA_ID'),
            url: flagValue(command, 'replicaUrl', '--replica-url', 'QUANTIX_REPLICA_URL'),
            leaseSeconds: flagValue(command, 'leaseSeconds', '--lease-seconds'),
          },
        }).catch(exitAtOnce);
      },
    );

  program
    .command('osinfo')
    .description('osinfo-db, the OS database ISOs are identified with')
    .command('import <archive>')
    .description(
      'install an osinfo-db release archive (.tar.xz) on this host, so nodes here identify newer releases without a package upgrade',
    )
    .option('--dir <dir>', 'where to put it (default: $XDG_DATA_HOME/quantix/osinfo, read by nodes on this host)')
    .action(async (archive: string, options: { dir?: string }) => {
      const { importOsinfoArchive } = await import('@quantix/images-iso');
      const imported = await importOsinfoArchive({ file: archive, ...(options.dir ? { dir: options.dir } : {}) });
      process.stdout.write(
        `osinfo-db ${imported.dbVersion} (${imported.mediaEntries} media entries) is in ${imported.dir}` +
          `${imported.previousVersion ? `, replacing ${imported.previousVersion}` : ''}; restart the node daemons on this host to use it\n`,
      );
    });

  apiCommands(program);
  return program;
}

/** An option's value with where it came from (the flag, or its variable), for error messages. */
function flagValue(
  command: Command,
  key: string,
  flag: string,
  envVar?: string,
): { value: string; from: string } | undefined {
  const value = command.getOptionValue(key) as string | undefined;
  if (value === undefined) return undefined;
  const from = command.getOptionValueSource(key) === 'env' && envVar ? envVar : flag;
  return { value, from };
}

/** A server that cannot start (port in use, data dir locked) says why and exits at once, non-zero. */
function exitAtOnce(error: unknown): never {
  reportError(error);
  process.exit(1);
}
