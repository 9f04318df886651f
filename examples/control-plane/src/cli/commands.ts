import { readFileSync } from 'node:fs';
import { isQuantixError } from '@quantix/core';
import { type Command, Option } from 'commander';
import { ApiClient, ApiError, resolveTarget } from './client.js';
import { renderProgress } from './progress.js';

type Row = Record<string, unknown>;

function table(rows: Row[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (row: Row, column: string) => {
    const value = column.split('.').reduce<unknown>((v, key) => (v as Row | null)?.[key], row);
    return value === null || value === undefined ? '-' : String(value);
  };
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r, c).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r, c))))].join(
    '\n',
  );
}

/** The API subcommands (pools, nodes, images, vms); `up` and `serve` are added by main. */
export function apiCommands(
  program: Command,
  out: (text: string) => void = (t) => process.stdout.write(`${t}\n`),
): void {
  program
    .addOption(new Option('--url <url>', 'control plane URL').env('QUANTIX_URL'))
    .addOption(
      new Option('--token <token>', 'API token (visible to other users in ps: prefer --token-file)').env(
        'QUANTIX_TOKEN',
      ),
    )
    .addOption(new Option('--token-file <file>', 'read the API token from this file'))
    .option('--json', 'print JSON instead of tables');

  const client = () => {
    const flags = program.opts<{ url?: string; token?: string; tokenFile?: string }>();
    if (flags.token && program.getOptionValueSource('token') === 'cli')
      warnArgvSecret('--token', 'QUANTIX_TOKEN or --token-file');
    const token = flags.tokenFile ? readFileSync(flags.tokenFile, 'utf8').trim() : flags.token;
    return new ApiClient(resolveTarget({ ...(flags.url ? { url: flags.url } : {}), ...(token ? { token } : {}) }));
  };
  const print = (value: unknown, render: () => string) =>
    out(program.opts<{ json?: boolean }>().json ? JSON.stringify(value, null, 2) : render());

  const pools = program.command('pools').description('storage pools');
  pools.command('list').action(async () => {
    const { pools: list } = await client().request<{ pools: Row[] }>('GET', '/pools');
    const rows = list.map((p) => ({
      ...p,
      states: (p.nodeStates as Row[]).map((s) => `${s.nodeId}:${s.status}`).join(',') || '-',
    }));
    print(list, () => table(rows, ['id', 'name', 'type', 'shared', 'nodeIds', 'states']));
  });
  pools
    .command('create <name>')
    .requiredOption('--type <type>', 'local or nfs')
    .option('--id <id>')
    .option('--path <path>', 'directory (local pools)')
    .option('--server <server>', 'NFS server')
    .option('--export <export>', 'NFS export')
    .option('--mount-point <dir>', 'where to mount (NFS)')
    .option('--content <types>', 'iso,images', 'iso,images')
    .option('--shared', 'every assigned node sees the same files')
    .option('--node <ids>', 'assign to these nodes (comma-separated)', '')
    .action(async (name: string, o: Record<string, string | boolean | undefined>) => {
      const config: Record<string, unknown> = {};
      if (o.path) config.path = o.path;
      if (o.server) config.server = o.server;
      if (o.export) config.export = o.export;
      if (o.mountPoint) config.mountPoint = o.mountPoint;
      const pool = await client().request<Row>('POST', '/pools', {
        ...(o.id ? { id: o.id } : {}),
        name,
        type: o.type,
        config,
        contentTypes: String(o.content).split(','),
        shared: Boolean(o.shared),
        nodeIds: String(o.node).split(',').filter(Boolean),
      });
      print(pool, () => `created pool ${pool.id}`);
    });
  pools
    .command('assign <poolId> <nodeIds>')
    .description('assign to exactly these nodes (comma-separated)')
    .action(async (poolId: string, nodeIds: string) => {
      const pool = await client().request<Row>('PUT', `/pools/${encodeURIComponent(poolId)}/nodes`, {
        nodeIds: nodeIds.split(',').filter(Boolean),
      });
      print(pool, () => `pool ${poolId} assigned to ${nodeIds}`);
    });
  pools.command('delete <poolId>').action(async (poolId: string) => {
    await client().request('DELETE', `/pools/${encodeURIComponent(poolId)}`);
    out(`deleted pool ${poolId}`);
  });

  const nodes = program.command('nodes').description('hypervisor nodes');
  nodes.command('list').action(async () => {
    const { nodes: list } = await client().request<{ nodes: Row[] }>('GET', '/nodes');
    print(list, () => table(list, ['id', 'hostname', 'connectionState', 'replicaId', 'lastSeenAt', 'agentVersion']));
  });
  nodes
    .command('add <hostname>')
    .option('--id <id>')
    .description('register a node and print its token (shown once)')
    .action(async (hostname: string, o: { id?: string }) => {
      const result = await client().request<{ node: Row; token: string }>('POST', '/nodes', {
        hostname,
        ...(o.id ? { id: o.id } : {}),
      });
      print(
        result,
        () =>
          `node ${result.node.id} registered\ntoken: ${result.token}\nrun on the node (the token in a file only root can read, never on the command line):\n  install -m 600 /dev/stdin /etc/quantix/node-token <<< '${result.token}'\n  quantix-node --url ${client().url} --node-id ${result.node.id} --token-file /etc/quantix/node-token`,
      );
    });

  const images = program.command('images').description('cloud images and ISOs');
  images
    .command('list')
    .option('--kind <kind>', 'cloud or iso')
    .option('--phase <phases>', 'comma-separated')
    .option('--pool <poolId>')
    .option('--node <nodeId>', 'show paths on this node')
    .option('--text <text>')
    .action(async (o: Record<string, string | undefined>) => {
      const query = new URLSearchParams();
      if (o.kind) query.set('kind', o.kind);
      if (o.phase) query.set('phase', o.phase);
      if (o.pool) query.set('poolId', o.pool);
      if (o.node) query.set('nodeId', o.node);
      if (o.text) query.set('text', o.text);
      const result = await client().request<{ images: Row[]; total: number }>('GET', `/images?${query}`);
      print(
        result,
        () =>
          `${table(result.images, ['id', 'name', 'kind', 'phase', 'sizeBytes', 'location.poolId', o.node ? 'path' : 'location.relPath'])}\n${result.total} image(s)`,
      );
    });
  images
    .command('available')
    .requiredOption('--node <nodeId>')
    .action(async (o: { node: string }) => {
      const result = await client().request<{ images: Row[] }>(
        'GET',
        `/images/available?nodeId=${encodeURIComponent(o.node)}`,
      );
      print(result, () => table(result.images, ['name', 'kind', 'status', 'path', 'reason']));
    });
  images.command('catalog').action(async () => {
    const result = await client().request<{ entries: Row[] }>('GET', '/catalog');
    print(result, () => table(result.entries, ['id', 'name', 'kind', 'sourceUrl']));
  });
  images
    .command('download <catalogId>')
    .requiredOption('--pool <poolId>')
    .option('--node <nodeId>')
    .option('--no-wait', 'return at once instead of following progress')
    .action(async (catalogId: string, o: { pool: string; node?: string; wait: boolean }) => {
      const api = client();
      const image = await api.request<Row>('POST', '/images/download', {
        catalogId,
        poolId: o.pool,
        ...(o.node ? { nodeId: o.node } : {}),
      });
      if (!o.wait) return print(image, () => `download of ${catalogId} started: image ${image.id}`);
      const tty = process.stderr.isTTY;
      for (;;) {
        const current = await api.request<
          Row & { progress: { bytesDone: number; bytesTotal: number | null; percent: number | null } | null }
        >('GET', `/images/${image.id}`);
        if (current.progress) {
          const line = renderProgress({ label: String(current.name), ...current.progress });
          process.stderr.write(tty ? `\r${line}` : `${line}\n`);
        }
        if (current.phase === 'ready' || current.phase === 'error') {
          if (tty) process.stderr.write('\n');
          if (current.phase === 'error') {
            const error = current.error as { code: string; message: string };
            throw new ApiError(0, error.code, `download failed: ${error.message}`, {});
          }
          return print(current, () => `${current.name} is ready (${current.id})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    });
  images.command('retry <imageId>').action(async (imageId: string) => {
    const image = await client().request<Row>('POST', `/images/${encodeURIComponent(imageId)}/retry`);
    print(image, () => `retrying ${image.name}`);
  });
  images
    .command('rescan')
    .option('--pool <poolId>')
    .action(async (o: { pool?: string }) => {
      const result = await client().request<Row>('POST', '/images/rescan', o.pool ? { poolId: o.pool } : {});
      print(result, () => JSON.stringify(result));
    });
  images.command('delete <imageId>').action(async (imageId: string) => {
    await client().request('DELETE', `/images/${encodeURIComponent(imageId)}`);
    out(`deleted image ${imageId}`);
  });

  const vms = program.command('vms').description('virtual machines');
  vms
    .command('list')
    .option('--node <nodeId>')
    .action(async (o: { node?: string }) => {
      const result = await client().request<{ vms: Row[] }>(
        'GET',
        `/vms${o.node ? `?nodeId=${encodeURIComponent(o.node)}` : ''}`,
      );
      print(result, () => table(result.vms, ['id', 'name', 'nodeId', 'state', 'cpu', 'memoryMiB', 'error']));
    });
  vms
    .command('create <name>')
    .requiredOption('--node <nodeId>')
    .requiredOption('--image <imageId>')
    .option('--cpu <n>', 'vCPUs', '1')
    .option('--memory <MiB>', 'memory in MiB', '1024')
    .option('--disk <GiB>', 'disk size in GiB', '10')
    .option('--ssh-key <key...>', 'authorized SSH keys for cloud images')
    .action(
      async (
        name: string,
        o: { node: string; image: string; cpu: string; memory: string; disk: string; sshKey?: string[] },
      ) => {
        const vm = await client().request<Row>('POST', '/vms', {
          name,
          nodeId: o.node,
          imageId: o.image,
          cpu: Number(o.cpu),
          memoryMiB: Number(o.memory),
          diskGiB: Number(o.disk),
          sshAuthorizedKeys: o.sshKey ?? [],
        });
        print(vm, () => `VM ${vm.name} is ${vm.state} on ${vm.nodeId} (${vm.id})`);
      },
    );
  for (const action of ['start', 'stop'] as const) {
    vms.command(`${action} <vmId>`).action(async (vmId: string) => {
      const vm = await client().request<Row>(
        'POST',
        `/vms/${encodeURIComponent(vmId)}/${action}`,
        action === 'stop' ? {} : undefined,
      );
      print(vm, () => `VM ${vm.name} is ${vm.state}`);
    });
  }
  vms.command('delete <vmId>').action(async (vmId: string) => {
    await client().request('DELETE', `/vms/${encodeURIComponent(vmId)}`);
    out(`deleted VM ${vmId}`);
  });
}

/** Prints an API error as the user can act on it, and sets a failing exit code. */
/** Says, on stderr, that a secret came in argv, where every local user can read it with ps. */
export function warnArgvSecret(what: string, instead: string): void {
  process.stderr.write(
    `warning: ${what} on the command line, where every user of this machine can read it (ps); use ${instead}\n`,
  );
}

export function reportError(error: unknown): void {
  if (error instanceof ApiError || isQuantixError(error)) {
    process.stderr.write(`error ${error.code}: ${error.message}\n`);
  } else {
    process.stderr.write(`error: ${(error as Error)?.message ?? String(error)}\n`);
  }
  process.exitCode = 1;
}
