import { readFileSync } from 'node:fs';
import { isQuantixError, parseNicReference } from '@quantix/core';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ApiClient, ApiError, resolveTarget } from './client.js';
import { renderProgress } from './progress.js';

type Row = Record<string, unknown>;

/** A command used wrongly, found after commander parsed it: exit code 2, like commander's own. */
class UsageError extends Error {}

/** The one row whose keys include `value` (an id first, then a name); else NOT_FOUND or AMBIGUOUS. */
function pickOne(rows: Row[], value: string, what: string, keys: (row: Row) => unknown[]): string {
  const byId = rows.find((r) => r.id === value);
  if (byId) return String(byId.id);
  const matches = rows.filter((r) => keys(r).includes(value));
  if (matches.length === 1) return String(matches[0]?.id);
  const known = rows.map((r) => keys(r).filter(Boolean).join(' / ')).join(', ') || 'none';
  throw new ApiError(
    0,
    matches.length === 0 ? 'NOT_FOUND' : 'AMBIGUOUS',
    matches.length === 0
      ? `no ${what} has the id or name ${JSON.stringify(value)} (known: ${known})`
      : `${matches.length} ${what}s are named ${JSON.stringify(value)}: give the id (${matches.map((r) => r.id).join(', ')})`,
    {},
  );
}

/** A whole number ≥ 0 from an option; anything else is a usage error (exit 2) naming the value. */
function wholeNumber(value: string): string {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number.`);
  return value;
}

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

  /** A pool's id from its id or its name; an unknown or ambiguous name fails, naming the choices. */
  const poolIdOf = async (api: ApiClient, value: string): Promise<string> => {
    const { pools: list } = await api.request<{ pools: Row[] }>('GET', '/pools');
    return pickOne(list, value, 'pool', (p) => [p.id, p.name]);
  };
  /** A node's id from its id or its hostname. */
  const nodeIdOf = async (api: ApiClient, value: string): Promise<string> => {
    const { nodes: list } = await api.request<{ nodes: Row[] }>('GET', '/nodes');
    return pickOne(list, value, 'node', (n) => [n.id, n.hostname]);
  };

  const pools = program.command('pools').description('storage pools');
  pools
    .command('list')
    .description('list pools with their state on each node (and why, where a pool is in error)')
    .action(async () => {
      const { pools: list } = await client().request<{ pools: Row[] }>('GET', '/pools');
      const rows = list.map((p) => ({
        ...p,
        states:
          (p.nodeStates as Row[])
            .map((s) => `${s.nodeId}:${s.status}${s.lastError ? ` (${s.lastError})` : ''}`)
            .join(', ') || '-',
      }));
      print(list, () => table(rows, ['id', 'name', 'type', 'shared', 'nodeIds', 'states']));
    });
  pools
    .command('create <name>')
    .description('define a pool and assign it to nodes')
    .requiredOption('--type <type>', 'local or nfs')
    .option('--id <id>', 'the pool id (default: made from the name)')
    .option('--path <path>', 'directory (local pools)')
    .option('--create', 'create the directory when it does not exist (local pools)')
    .option('--server <server>', 'NFS server')
    .option('--export <export>', 'NFS export')
    .option('--mount-point <dir>', 'where to mount (NFS)')
    .option('--content <types>', 'what the pool holds: iso, images, or both comma-separated', 'iso,images')
    .option('--shared', 'every assigned node sees the same files')
    .option('--node <nodes>', 'assign to these nodes (ids or hostnames, comma-separated)', '')
    .action(async (name: string, o: Record<string, string | boolean | undefined>) => {
      const api = client();
      const config: Record<string, unknown> = {};
      if (o.path) config.path = o.path;
      if (o.create) config.create = true;
      if (o.server) config.server = o.server;
      if (o.export) config.export = o.export;
      if (o.mountPoint) config.mountPoint = o.mountPoint;
      const nodeIds = await Promise.all(
        String(o.node)
          .split(',')
          .filter(Boolean)
          .map((n) => nodeIdOf(api, n)),
      );
      const pool = await api.request<Row>('POST', '/pools', {
        ...(o.id ? { id: o.id } : {}),
        name,
        type: o.type,
        config,
        contentTypes: String(o.content).split(','),
        shared: Boolean(o.shared),
        nodeIds,
      });
      print(pool, () => `created pool ${pool.id}`);
    });
  pools
    .command('update <pool>')
    .description('change a pool’s name, description, content or sharing (pool: id or name)')
    .option('--name <name>', 'new name')
    .option('--description <text>', 'new description')
    .option('--content <types>', 'what the pool holds: iso, images, or both comma-separated')
    .option('--shared', 'every assigned node sees the same files')
    .option('--no-shared', 'each node has its own files')
    .action(async (value: string, o: { name?: string; description?: string; content?: string; shared?: boolean }) => {
      const api = client();
      const id = await poolIdOf(api, value);
      const patch = {
        ...(o.name ? { name: o.name } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
        ...(o.content ? { contentTypes: o.content.split(',') } : {}),
        ...(o.shared !== undefined ? { shared: o.shared } : {}),
      };
      if (Object.keys(patch).length === 0)
        throw new UsageError('nothing to change: give --name, --description, --content or --shared/--no-shared');
      const pool = await api.request<Row>('PATCH', `/pools/${encodeURIComponent(id)}`, patch);
      print(pool, () => `updated pool ${pool.id}`);
    });
  pools
    .command('assign <pool> <nodes>')
    .description('assign a pool to exactly these nodes (pool: id or name; nodes: ids or hostnames, comma-separated)')
    .action(async (value: string, nodes: string) => {
      const api = client();
      const id = await poolIdOf(api, value);
      const nodeIds = await Promise.all(
        nodes
          .split(',')
          .filter(Boolean)
          .map((n) => nodeIdOf(api, n)),
      );
      const pool = await api.request<Row>('PUT', `/pools/${encodeURIComponent(id)}/nodes`, { nodeIds });
      print(pool, () => `pool ${id} assigned to ${nodeIds.join(',') || 'no node'}`);
    });
  pools
    .command('delete <pool>')
    .description('delete a pool definition (its files stay; pool: id or name)')
    .action(async (value: string) => {
      const api = client();
      const id = await poolIdOf(api, value);
      await api.request('DELETE', `/pools/${encodeURIComponent(id)}`);
      out(`deleted pool ${id}`);
    });

  const nodes = program.command('nodes').description('hypervisor nodes');
  nodes
    .command('list')
    .description('list nodes, their connection and the replica holding them')
    .action(async () => {
      const { nodes: list } = await client().request<{ nodes: Row[] }>('GET', '/nodes');
      print(list, () => table(list, ['id', 'hostname', 'connectionState', 'replicaId', 'lastSeenAt', 'agentVersion']));
    });
  nodes
    .command('add <hostname>')
    .option('--id <id>', 'the node id (default: made from the hostname)')
    .description('register a node and print its token (shown once) and the command that connects it')
    .action(async (hostname: string, o: { id?: string }) => {
      const api = client();
      const result = await api.request<{ node: Row; token: string }>('POST', '/nodes', {
        hostname,
        ...(o.id ? { id: o.id } : {}),
      });
      print(
        result,
        () =>
          `node ${result.node.id} registered\ntoken: ${result.token}\nrun on the node (the token in a file only root can read, never on the command line):\n  install -d -m 700 /etc/quantix && install -m 600 /dev/stdin /etc/quantix/node-token <<< '${result.token}'\n  quantix-node --url ${api.url} --node-id ${result.node.id} --token-file /etc/quantix/node-token`,
      );
    });

  nodes
    .command('networks <node>')
    .description('the libvirt networks and host bridges of a node: what `vms create --network` can name')
    .action(async (node: string) => {
      const api = client();
      const result = await api.request<{ networks: Row[] }>(
        'GET',
        `/nodes/${encodeURIComponent(await nodeIdOf(api, node))}/networks`,
      );
      const rows = result.networks.map((n) => ({
        ...n,
        use: n.attachment === 'bridge' ? `bridge:${n.name}` : n.name,
        state: n.active ? 'active' : 'inactive',
        addresses: (n.addresses as string[]).join(', ') || '-',
      }));
      print(result, () => table(rows, ['use', 'state', 'forward', 'bridge', 'addresses', 'dhcp']));
    });

  const images = program.command('images').description('cloud images and ISOs');
  images
    .command('list')
    .description('list image rows (downloads, uploads, ISOs found in pools)')
    .option('--kind <kind>', 'cloud or iso')
    .option('--phase <phases>', 'only these phases, comma-separated (ready, downloading, error, …)')
    .option('--pool <pool>', 'only images in this pool (id or name)')
    .option('--node <node>', 'show paths on this node (id or hostname)')
    .option('--text <text>', 'search names, OS and labels')
    .action(async (o: Record<string, string | undefined>) => {
      const api = client();
      const query = new URLSearchParams();
      if (o.kind) query.set('kind', o.kind);
      if (o.phase) query.set('phase', o.phase);
      if (o.pool) query.set('poolId', await poolIdOf(api, o.pool));
      if (o.node) query.set('nodeId', await nodeIdOf(api, o.node));
      if (o.text) query.set('text', o.text);
      const result = await api.request<{ images: Row[]; total: number }>('GET', `/images?${query}`);
      print(
        result,
        () =>
          `${table(result.images, ['id', 'name', 'kind', 'phase', 'sizeBytes', 'location.poolId', o.node ? 'path' : 'location.relPath'])}\n${result.total} image(s)`,
      );
    });
  images
    .command('available')
    .description('what a VM on this node can boot from: images and catalog entries, with why one cannot be chosen')
    .requiredOption('--node <node>', 'the node (id or hostname)')
    .option('--kind <kind>', 'cloud or iso')
    .option('--search <text>', 'search names and OS')
    .action(async (o: { node: string; kind?: string; search?: string }) => {
      const api = client();
      const query = new URLSearchParams({ nodeId: await nodeIdOf(api, o.node) });
      if (o.kind) query.set('kind', o.kind);
      if (o.search) query.set('text', o.search);
      const result = await api.request<{ images: Row[] }>('GET', `/images/available?${query}`);
      print(result, () => table(result.images, ['imageId', 'catalogId', 'name', 'kind', 'status', 'path', 'reason']));
    });
  images
    .command('catalog')
    .description('list the catalog entries images can be downloaded from')
    .action(async () => {
      const result = await client().request<{ entries: Row[] }>('GET', '/catalog');
      print(result, () => table(result.entries, ['id', 'name', 'kind', 'sourceUrl']));
    });
  images
    .command('download <catalogId>')
    .description('download a catalog entry into a pool, verified, following its progress')
    .requiredOption('--pool <pool>', 'the pool to download into (id or name)')
    .option('--node <node>', 'the node that downloads (id or hostname; default: one the pool is active on)')
    .option('--no-wait', 'return at once instead of following progress')
    .action(async (catalogId: string, o: { pool: string; node?: string; wait: boolean }) => {
      const api = client();
      const image = await api.request<Row>('POST', '/images/download', {
        catalogId,
        poolId: await poolIdOf(api, o.pool),
        ...(o.node ? { nodeId: await nodeIdOf(api, o.node) } : {}),
      });
      if (!o.wait) return print(image, () => `download of ${catalogId} started: image ${image.id}`);
      await follow(api, image);
    });
  images
    .command('retry <imageId>')
    .description('retry a failed download, following its progress')
    .option('--no-wait', 'return at once instead of following progress')
    .action(async (imageId: string, o: { wait: boolean }) => {
      const api = client();
      const image = await api.request<Row>('POST', `/images/${encodeURIComponent(imageId)}/retry`);
      if (!o.wait) return print(image, () => `retrying ${image.name}`);
      await follow(api, image);
    });
  images
    .command('rescan')
    .description('scan pools for ISOs again (every pool, or one)')
    .option('--pool <pool>', 'only this pool (id or name)')
    .action(async (o: { pool?: string }) => {
      const api = client();
      const poolId = o.pool ? await poolIdOf(api, o.pool) : undefined;
      const result = await api.request<{ scanned: Row[]; failed: Row[] }>(
        'POST',
        '/images/rescan',
        poolId ? { poolId } : {},
      );
      const rows = [
        ...result.scanned.map((r) => ({ ...r, result: 'scanned' })),
        ...result.failed.map((r) => ({ ...r, result: `failed: ${r.code} ${r.error}` })),
      ];
      print(result, () => table(rows, ['poolId', 'nodeId', 'result']));
      if (result.failed.length > 0) process.exitCode = 1;
    });
  images
    .command('delete <imageId>')
    .description('delete an image row and its file')
    .action(async (imageId: string) => {
      await client().request('DELETE', `/images/${encodeURIComponent(imageId)}`);
      out(`deleted image ${imageId}`);
    });

  /** Follows a download (or retry) until ready or failed, progress on stderr; a failure throws. */
  const follow = async (api: ApiClient, image: Row) => {
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
  };

  /** A VM's addresses as its node reports them now; none for a VM without NICs or not running. */
  const addressesOf = async (api: ApiClient, vm: Row): Promise<Row[]> => {
    if (!Array.isArray(vm.nics) || vm.nics.length === 0 || vm.state !== 'running') return [];
    try {
      return (await api.request<{ addresses: Row[] }>('GET', `/vms/${encodeURIComponent(String(vm.id))}/addresses`))
        .addresses;
    } catch (error) {
      // A node that is away leaves the addresses unknown; the listing still shows.
      if (error instanceof ApiError && error.code === 'NODE_NOT_CONNECTED') return [];
      throw error;
    }
  };
  const addressText = (addresses: Row[]) =>
    addresses
      .filter((a) => a.family === 'ipv4')
      .map((a) => a.address)
      .join(', ') || '-';

  const vms = program.command('vms').description('virtual machines');
  vms
    .command('list')
    .description('list VMs')
    .option('--node <node>', 'only VMs on this node (id or hostname)')
    .action(async (o: { node?: string }) => {
      const api = client();
      const result = await api.request<{ vms: Row[] }>(
        'GET',
        `/vms${o.node ? `?nodeId=${encodeURIComponent(await nodeIdOf(api, o.node))}` : ''}`,
      );
      const rows = await Promise.all(
        result.vms.map(async (vm) => ({ ...vm, addresses: addressText(await addressesOf(api, vm)) })),
      );
      print(result, () => table(rows, ['id', 'name', 'nodeId', 'state', 'addresses', 'cpu', 'memoryMiB', 'error']));
    });
  vms
    .command('show <vm>')
    .description('a VM (id or name): its state, NICs (network, MAC) and the addresses it can be reached at')
    .action(async (value: string) => {
      const api = client();
      const { vms: list } = await api.request<{ vms: Row[] }>('GET', '/vms');
      const vmId = pickOne(list, value, 'VM', (v) => [v.id, v.name]);
      const vm = await api.request<Row & { nics: Row[] }>('GET', `/vms/${encodeURIComponent(vmId)}`);
      const addresses = await addressesOf(api, vm);
      print({ ...vm, addresses }, () =>
        [
          `VM ${vm.name} (${vm.id}) is ${vm.state} on ${vm.nodeId}${vm.error ? `: ${vm.error}` : ''}`,
          `cpu ${vm.cpu}, memory ${vm.memoryMiB} MiB`,
          'NICs:',
          table(
            vm.nics.map((nic) => ({
              ...nic,
              network: nic.attachment === 'bridge' ? `bridge:${nic.source}` : nic.source,
              addresses: addressText(addresses.filter((a) => a.mac === nic.mac)),
            })),
            ['network', 'model', 'mac', 'addresses'],
          ),
        ].join('\n'),
      );
    });
  vms
    .command('create <name>')
    .description('create a VM from a ready image and start it')
    .requiredOption('--node <node>', 'the node to run it on (id or hostname)')
    .requiredOption('--image <imageId>', 'a ready image (cloud image or ISO) reachable from that node')
    .option('--cpu <n>', 'vCPUs', wholeNumber, '1')
    .option('--memory <MiB>', 'memory in MiB', wholeNumber, '1024')
    .option('--disk <GiB>', 'disk size in GiB', wholeNumber, '10')
    .option('--ssh-key <key...>', 'authorized SSH keys for cloud images')
    .option(
      '--network <network>',
      'a NIC on this network of the node: a libvirt network (default) or bridge:<name> (bridge:br0); repeat for more NICs, in order (see `nodes networks`)',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .action(
      async (
        name: string,
        o: {
          node: string;
          image: string;
          cpu: string;
          memory: string;
          disk: string;
          sshKey?: string[];
          network?: string[];
        },
      ) => {
        let networks: { attachment: string; source: string }[];
        try {
          networks = (o.network ?? []).map((text) => parseNicReference(text));
        } catch (error) {
          throw new UsageError(`--network: ${(error as Error).message}`);
        }
        const api = client();
        const vm = await api.request<Row>('POST', '/vms', {
          name,
          nodeId: await nodeIdOf(api, o.node),
          imageId: o.image,
          cpu: Number(o.cpu),
          memoryMiB: Number(o.memory),
          diskGiB: Number(o.disk),
          sshAuthorizedKeys: o.sshKey ?? [],
          networks,
        });
        print(vm, () => `VM ${vm.name} is ${vm.state} on ${vm.nodeId} (${vm.id})`);
      },
    );
  vms
    .command('start <vmId>')
    .description('start a stopped VM')
    .action(async (vmId: string) => {
      const vm = await client().request<Row>('POST', `/vms/${encodeURIComponent(vmId)}/start`);
      print(vm, () => `VM ${vm.name} is ${vm.state}`);
    });
  vms
    .command('stop <vmId>')
    .description(
      'shut a VM down (ACPI) and wait for the guest to power off; fails (exit 1) if it does not within the timeout, unless --force',
    )
    .option('--force', 'power the VM off if the guest has not shut down by the end of the timeout')
    .option(
      '--timeout <seconds>',
      'how long the guest gets to shut down (default 60; 0 with --force: power off at once)',
      wholeNumber,
    )
    .action(async (vmId: string, o: { force?: boolean; timeout?: string }) => {
      const vm = await client().request<Row>('POST', `/vms/${encodeURIComponent(vmId)}/stop`, {
        force: Boolean(o.force),
        ...(o.timeout === undefined ? {} : { timeoutSeconds: Number(o.timeout) }),
      });
      print(vm, () => `VM ${vm.name} is ${vm.state}`);
    });
  vms
    .command('delete <vmId>')
    .description('delete a VM and the disks made for it')
    .action(async (vmId: string) => {
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
  if (error instanceof UsageError) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  if (error instanceof ApiError || isQuantixError(error)) {
    process.stderr.write(`error ${error.code}: ${error.message}\n`);
  } else {
    process.stderr.write(`error: ${(error as Error)?.message ?? String(error)}\n`);
  }
  process.exitCode = 1;
}
