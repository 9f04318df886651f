import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { nodeConnectCommands, type QuantixClient, type QueryParams, type ResponseBody } from '@quantix/client';
import type { parseNicReference } from '@quantix/core';
import { GOLDEN_LABELS, isQuantixError, terminalSafe, terminalSafeJson } from '@quantix/core/light';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  describeHost,
  describeNodeVms,
  describePoolSource,
  formatAgo,
  formatBytes,
  poolConfigWith,
  uploadKindOf,
} from '../../ui/src/format.js';
import { ApiError, clientFor, resolveTarget } from './client.js';
import { exportImageContent } from './export.js';
import { progressReporter } from './progress.js';
import { resumableUpload } from './upload.js';

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

/** What an id made by the control plane looks like: a name of that shape is not looked up. */
const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A time as the API answers it (an ISO string in JSON), or '-'. */
const iso = (value: string | Date | null | undefined) => (value ? new Date(value).toISOString() : '-');

/** A whole number ≥ 0 from an option; anything else is a usage error (exit 2) naming the value. */
function wholeNumber(value: string): string {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number.`);
  return value;
}

/** A table column: the row's key (dotted for a nested one), its heading, and how a value reads. */
interface Column {
  key: string;
  heading?: string;
  show?: (value: unknown) => string;
}

/** A key's heading: its last part in words, upper case ('connectionState' → 'CONNECTION STATE'). */
const headingOf = (key: string) => (key.split('.').at(-1) ?? key).replace(/([a-z0-9])([A-Z])/g, '$1 $2').toUpperCase();

/** Values with their unit: sizes people read, not byte counts. */
const bytes = (value: unknown) => formatBytes(Number(value));
const unit = (name: string) => (value: unknown) => `${value} ${name}`;

function table(rows: Row[], columns: (string | Column)[]): string {
  if (rows.length === 0) return '(none)';
  const specs = columns.map((c) => (typeof c === 'string' ? { key: c } : c));
  const cell = (row: Row, { key, show }: Column) => {
    const value = key.split('.').reduce<unknown>((v, part) => (v as Row | null)?.[part], row);
    if (value === null || value === undefined) return '-';
    return show ? show(value) : String(value);
  };
  const headings = specs.map((c) => c.heading ?? headingOf(c.key));
  const widths = specs.map((c, i) => Math.max(headings[i]?.length ?? 0, ...rows.map((r) => cell(r, c).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headings), ...rows.map((r) => line(specs.map((c) => cell(r, c))))].join('\n');
}

/** The `labels:` lines of the show commands, one `  key=value` each; none without labels. */
function labelLines(labels: Record<string, string>): string[] {
  const entries = Object.entries(labels);
  return entries.length > 0 ? ['labels:', ...entries.map(([key, value]) => `  ${key}=${value}`)] : [];
}

/** A pool's state on a node as the show commands print it: its status (and why), mount, size and free space. */
interface PoolStateFields {
  status: string;
  mountPath: string | null;
  capacityBytes: number | null;
  availableBytes: number | null;
  lastError: string | null;
  checkedAt: string | Date | null;
}

/** The columns of a pool's states (`pools show`, one row per node; `nodes show`, one per pool) after the first. */
function poolStateRow(state: PoolStateFields, now: number): Row {
  const { capacityBytes: size, availableBytes: free } = state;
  return {
    status: `${state.status}${state.lastError ? ` (${state.lastError})` : ''}`,
    mountPath: state.mountPath,
    size: size == null ? null : formatBytes(size),
    free: free == null ? null : `${formatBytes(free)}${size ? ` (${Math.round((free / size) * 100)}%)` : ''}`,
    checked: state.checkedAt ? formatAgo(String(state.checkedAt), now) : null,
  };
}
const POOL_STATE_COLUMNS: Column[] = [
  { key: 'status', heading: 'STATE' },
  { key: 'mountPath', heading: 'MOUNTED AT' },
  { key: 'size' },
  { key: 'free' },
  { key: 'checked', heading: 'REPORTED' },
];

/** The API subcommands (pools, nodes, images, vms); `up` and `serve` are added by main. */
export function apiCommands(
  program: Command,
  write: (text: string) => void = (t) => process.stdout.write(`${t}\n`),
): void {
  // What is printed comes from the API — names, labels, messages — and may come from a file or a
  // record written before it was checked (an ISO's volume id): never a terminal escape on screen.
  const out = (text: string) => write(terminalSafe(text));
  program
    .addOption(new Option('--url <url>', 'control plane URL').env('QUANTIX_URL'))
    .addOption(
      new Option('--token <token>', 'API token (visible to other users in ps: prefer --token-file)').env(
        'QUANTIX_TOKEN',
      ),
    )
    .addOption(new Option('--token-file <file>', 'read the API token from this file'))
    .option('--json', 'print JSON instead of tables');

  const target = () => {
    const flags = program.opts<{ url?: string; token?: string; tokenFile?: string }>();
    if (flags.token && program.getOptionValueSource('token') === 'cli')
      warnArgvSecret('--token', 'QUANTIX_TOKEN or --token-file');
    const token = flags.tokenFile ? readFileSync(flags.tokenFile, 'utf8').trim() : flags.token;
    return resolveTarget({ ...(flags.url ? { url: flags.url } : {}), ...(token ? { token } : {}) });
  };
  const client = () => clientFor(target());
  const print = (value: unknown, render: () => string) =>
    out(program.opts<{ json?: boolean }>().json ? terminalSafeJson(JSON.stringify(value, null, 2)) : render());

  /** A pool's id from its id or its name, among `list`; an unknown or ambiguous name fails, naming the choices. */
  const poolIdIn = (list: Row[], value: string): string => pickOne(list, value, 'pool', (p) => [p.id, p.name]);
  const poolIdOf = async (api: QuantixClient, value: string): Promise<string> =>
    poolIdIn((await api.request('listPools')).pools, value);
  /**
   * `--pool` given: that pool; left out: the one pool that takes `content`, as on an all-in-one
   * `quantix up` with its single pool. With several, or none, the user has to say (a usage error).
   */
  const poolIdOrOnly = async (api: QuantixClient, value: string | undefined, content: 'iso' | 'images') => {
    const list = (await api.request('listPools')).pools;
    if (value !== undefined) return poolIdIn(list, value);
    const taking = list.filter((p) => p.contentTypes.includes(content));
    if (taking.length === 1) return (taking[0] as (typeof taking)[number]).id;
    const what = content === 'iso' ? 'ISOs' : 'images';
    throw new UsageError(
      taking.length === 0
        ? `no pool takes ${what}: add one (quantix pools create) or give --pool`
        : `--pool is needed: ${taking.length} pools take ${what} (${taking.map((p) => p.name).join(', ')})`,
    );
  };
  /** Every page of a listing (1,000 rows a request), not the first under a total that says more. */
  const allImages = async (
    api: QuantixClient,
    query: QueryParams<'listImages'>,
  ): Promise<ResponseBody<'listImages'>> => {
    const wanted = { ...query, limit: 1000 };
    let result = await api.request('listImages', { query: wanted });
    const all = [...result.images];
    while (result.nextCursor) {
      result = await api.request('listImages', { query: { ...wanted, after: result.nextCursor } });
      all.push(...result.images);
    }
    return { ...result, images: all };
  };
  /**
   * An image's id from its id, its name, or the catalog entry it was downloaded from (what
   * `images download ubuntu-24.04` was given). A name is looked up with the API's text search and
   * must be one image's alone (one ISO in two pools has two ids: AMBIGUOUS, naming them), as must
   * an entry's image (downloaded into two pools); what neither names, or what has an id's shape, is
   * taken as an id, for the API to find (or NOT_FOUND). An entry's image that follows upstream is
   * one image with its revisions: the first (or, once it was pruned, the newest there is).
   */
  const imageIdOf = async (api: QuantixClient, value: string): Promise<string> => {
    if (UUID_SHAPE.test(value)) return value;
    const [{ images: found }, { images: downloaded }, { images: revisions }] = await Promise.all([
      api.request('listImages', { query: { text: value, limit: 1000 } }),
      api.request('listImages', { query: { catalogId: value, limit: 1000 } }),
      api.request('listImages', { query: { label: `${GOLDEN_LABELS.catalogId}=${value}`, limit: 1000 } }),
    ]);
    const named = found.filter((image) => image.name === value);
    if (named.length === 1) return String(named[0]?.id);
    if (named.length > 1) throw await ambiguousImages(api, named, `are named ${JSON.stringify(value)}`);
    // The entry's revisions count as their golden image's: one image, however many revisions.
    const goldenOf = (image: (typeof revisions)[number]) => image.labels[GOLDEN_LABELS.goldenImage] ?? image.id;
    const goldens = new Set([...downloaded, ...revisions].map(goldenOf));
    if (goldens.size === 1 && revisions.length > 0) {
      const newest = revisions.reduce((a, b) =>
        Number(b.labels[GOLDEN_LABELS.revision]) > Number(a.labels[GOLDEN_LABELS.revision]) ? b : a,
      );
      return downloaded[0]?.id ?? newest.id;
    }
    const [only, ...others] = downloaded;
    if (!only) return value;
    if (others.length === 0) return only.id;
    throw await ambiguousImages(api, downloaded, `come from catalog entry ${JSON.stringify(value)}`);
  };
  /** AMBIGUOUS for `images`, each by its id and its pool: which id is the one meant. */
  const ambiguousImages = async (
    api: QuantixClient,
    images: readonly { id: string; location: { poolId: string } | null }[],
    what: string,
  ): Promise<ApiError> => {
    const poolName = poolNamesIn((await api.request('listPools')).pools);
    const where = images.map(
      (image) => `${image.id} in ${image.location ? poolName(image.location.poolId) : 'no pool'}`,
    );
    return new ApiError(0, 'AMBIGUOUS', `${images.length} images ${what}: give the id (${where.join(', ')})`, {});
  };
  /** How tables and messages name the pools of `list`: by name (unique), as `--pool` takes it. */
  const poolNamesIn = (list: readonly { id: string; name: string }[]): ((poolId: string) => string) => {
    const names = new Map(list.map((p) => [p.id, p.name]));
    return (poolId) => names.get(poolId) ?? poolId;
  };
  /** A node's id from its id or its hostname, among `list`. */
  const nodeIdIn = (list: Row[], value: string): string => pickOne(list, value, 'node', (n) => [n.id, n.hostname]);
  const nodeIdOf = async (api: QuantixClient, value: string): Promise<string> =>
    nodeIdIn((await api.request('listNodes')).nodes, value);
  /** `--node` given: that node, among `list`; left out: the only node there is (`quantix up`'s), else a usage error. */
  const nodeIdOrOnly = (list: Row[], value: string | undefined): string => {
    if (value !== undefined) return nodeIdIn(list, value);
    if (list.length === 1) return String(list[0]?.id);
    throw new UsageError(
      list.length === 0
        ? 'no node is registered: add one (quantix nodes add) or give --node'
        : `--node is needed: there are ${list.length} nodes (${list.map((n) => n.id).join(', ')})`,
    );
  };
  /**
   * How tables and messages name the nodes of `list`: by hostname (unique), unless it is another
   * node's id (commands take both, the id first) — a node added by hostname has a UUID for its id.
   */
  const nodeNamesIn = (list: readonly { id: string; hostname: string }[]): ((nodeId: string) => string) => {
    const ids = new Set(list.map((n) => n.id));
    const names = new Map(list.map((n) => [n.id, n.hostname === n.id || !ids.has(n.hostname) ? n.hostname : n.id]));
    return (nodeId) => names.get(nodeId) ?? nodeId;
  };
  const nodeNamesOf = async (api: QuantixClient): Promise<(nodeId: string) => string> =>
    nodeNamesIn((await api.request('listNodes')).nodes);

  const pools = program.command('pools').description('storage pools');
  pools
    .command('list')
    .description('list pools with their state on each node (and why, where a pool is in error)')
    .action(async () => {
      const api = client();
      const [{ pools: list }, nodeName] = await Promise.all([api.request('listPools'), nodeNamesOf(api)]);
      const rows = list.map((p) => ({
        ...p,
        nodes: p.nodeIds.map(nodeName).join(', '),
        states:
          p.nodeStates
            .map((s) => `${nodeName(s.nodeId)}:${s.status}${s.lastError ? ` (${s.lastError})` : ''}`)
            .join(', ') || '-',
      }));
      print(list, () => table(rows, ['id', 'name', 'type', 'shared', 'nodes', 'states']));
    });
  pools
    .command('show <pool>')
    .description(
      'show a pool (id or name): where it is, what it holds, and on each of its nodes its state (and why), mount, size and free space',
    )
    .action(async (value: string) => {
      const api = client();
      const [pool, nodeName] = await Promise.all([
        poolIdOf(api, value).then((id) => api.request('getPool', { params: { id } })),
        nodeNamesOf(api),
      ]);
      const { total } = await api.request('listImages', { query: { poolId: pool.id, limit: 1 } });
      const now = Date.now();
      print(pool, () =>
        [
          `pool ${poolNamed(pool)}: ${pool.type}, ${pool.shared ? 'shared by its nodes' : 'node-local'}, holds ${pool.contentTypes.join(', ')}`,
          `source ${describePoolSource(pool.config)}`,
          ...(pool.description ? [pool.description] : []),
          ...labelLines(pool.labels),
          `${total} image(s) recorded in it`,
          '',
          pool.nodeIds.length === 0
            ? 'assigned to no node'
            : table(
                pool.nodeIds.map((nodeId) => {
                  const state = pool.nodeStates.find((s) => s.nodeId === nodeId);
                  return { node: nodeName(nodeId), ...(state ? poolStateRow(state, now) : { status: 'not reported' }) };
                }),
                [{ key: 'node' }, ...POOL_STATE_COLUMNS],
              ),
        ].join('\n'),
      );
    });
  pools
    .command('create <name>')
    .description('define a pool and assign it to nodes')
    .option('--type <type>', 'local or nfs (default: nfs when --server is given, else local)')
    .option('--id <id>', 'the pool id (default: a new UUID; commands take the pool’s name as well)')
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
      const config = poolConfigWith({}, placeGiven(o));
      const nodeIds = await Promise.all(
        String(o.node)
          .split(',')
          .filter(Boolean)
          .map((n) => nodeIdOf(api, n)),
      );
      const pool = await api.request('createPool', {
        body: {
          ...(o.id ? { id: String(o.id) } : {}),
          name,
          type: o.type ? String(o.type) : o.server ? 'nfs' : 'local',
          config,
          // The server names a wrong value (INVALID_INPUT), as it did before this was typed.
          contentTypes: String(o.content).split(',') as ('iso' | 'images')[],
          shared: Boolean(o.shared),
          nodeIds,
        },
      });
      // A pool on no node holds nothing yet: say so, and how to put it to use.
      print(pool, () =>
        nodeIds.length > 0
          ? `created pool ${poolNamed(pool)}`
          : `created pool ${poolNamed(pool)}, on no node yet: \`quantix pools assign ${pool.name} <nodes>\` puts it to use`,
      );
    });
  pools
    .command('update <pool>')
    .description(
      'change a pool’s name, description, content or sharing, or where it is (its directory; an NFS server, export or mount point) (pool: id or name)',
    )
    .option('--name <name>', 'new name')
    .option('--description <text>', 'new description')
    .option('--content <types>', 'what the pool holds: iso, images, or both comma-separated')
    .option('--shared', 'every assigned node sees the same files')
    .option('--no-shared', 'each node has its own files')
    .option('--path <path>', 'new directory (local pools; refused while VMs use the pool)')
    .option('--create', 'create the directory when it does not exist (local pools)')
    .option('--no-create', 'do not create the directory (local pools)')
    .option('--server <server>', 'new NFS server')
    .option('--export <export>', 'new NFS export')
    .option('--mount-point <dir>', 'where to mount (NFS)')
    .action(
      async (
        value: string,
        o: {
          name?: string;
          description?: string;
          content?: string;
          shared?: boolean;
          path?: string;
          create?: boolean;
          server?: string;
          export?: string;
          mountPoint?: string;
        },
      ) => {
        const api = client();
        const id = await poolIdOf(api, value);
        // The API takes the whole config: what is not given here stays as it is.
        const place = placeGiven(o);
        let config: Record<string, unknown> | undefined;
        if (Object.keys(place).length > 0) {
          const { config: current } = await api.request('getPool', { params: { id } });
          config = poolConfigWith(current, place);
        }
        const patch = {
          ...(o.name ? { name: o.name } : {}),
          ...(o.description !== undefined ? { description: o.description } : {}),
          ...(o.content ? { contentTypes: o.content.split(',') as ('iso' | 'images')[] } : {}),
          ...(o.shared !== undefined ? { shared: o.shared } : {}),
          ...(config ? { config } : {}),
        };
        if (Object.keys(patch).length === 0)
          throw new UsageError(
            'nothing to change: give --name, --description, --content, --shared/--no-shared, --path, --create/--no-create, --server, --export or --mount-point',
          );
        const pool = await api.request('updatePool', { params: { id }, body: patch });
        print(pool, () =>
          config
            ? `updated pool ${poolNamed(pool)}: ${describePoolSource(pool.config)}`
            : `updated pool ${poolNamed(pool)}`,
        );
      },
    );
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
      const pool = await api.request('assignPoolNodes', { params: { id }, body: { nodeIds } });
      print(pool, () => `pool ${poolNamed(pool)} assigned to ${nodeIds.join(',') || 'no node'}`);
    });
  pools
    .command('delete <pool>')
    .description(
      'delete a pool definition (id or name), after confirmation: its files stay (refused while images are recorded in it)',
    )
    .option('--yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .action(async (value: string, o: { yes?: boolean }) => {
      const api = client();
      const { pools: list } = await api.request('listPools');
      const id = poolIdIn(list, value);
      const pool = list.find((p) => p.id === id) as (typeof list)[number];
      const question = `Delete the definition of pool ${poolNamed(pool)} (its files stay)? [y/N] `;
      if (!(await deletionConfirmed(o.yes, `pool ${pool.name}`, question))) return;
      await api.request('deletePool', { params: { id: pool.id } });
      out(`deleted pool ${poolNamed(pool)}`);
    });

  const nodes = program.command('nodes').description('hypervisor nodes');
  nodes
    .command('list')
    .description('list nodes, their connection and the replica holding them')
    .action(async () => {
      const { nodes: list } = await client().request('listNodes');
      print(list, () =>
        table(list, [
          'id',
          'hostname',
          'connectionState',
          // When the node connected, or when it was last connected.
          { key: 'lastSeenAt', heading: 'SINCE', show: (at) => formatAgo(String(at), Date.now()) },
          'replicaId',
          'agentVersion',
        ]),
      );
    });
  nodes
    .command('show <node>')
    .description(
      'show a node (id or hostname): its connection, host, whether it runs VMs (and why not), its VMs, and each of its pools with its state, size and free space',
    )
    .action(async (value: string) => {
      const api = client();
      const node = await api.request('getNode', { params: { id: await nodeIdOf(api, value) } });
      const { vms: vmList } = await api.request('listVms', { query: { nodeId: node.id } });
      const now = Date.now();
      print(node, () =>
        [
          `node ${nodeNamed(node)} is ${node.connectionState} (${node.lastSeenAt ? `${node.connected ? 'since' : 'last seen'} ${formatAgo(String(node.lastSeenAt), now)}` : 'never connected'})${node.replicaId ? ` on replica ${node.replicaId}` : ''}${node.agentVersion ? `, agent ${node.agentVersion}` : ''}`,
          `host ${describeHost(node.capabilities)}; ${describeNodeVms(node.capabilities, vmList)}`,
          ...labelLines(node.labels),
          '',
          node.pools.length === 0
            ? 'no pool assigned'
            : table(
                node.pools.map(({ pool, state }) => ({
                  pool: pool.name,
                  ...(state ? poolStateRow(state, now) : { status: 'not reported' }),
                })),
                [{ key: 'pool' }, ...POOL_STATE_COLUMNS],
              ),
        ].join('\n'),
      );
    });
  nodes
    .command('add <hostname>')
    .option('--id <id>', 'the node id (default: a new UUID; commands take the hostname as well)')
    .description('register a node and print its token (shown once) and the command that connects it')
    .action(async (hostname: string, o: { id?: string }) => {
      const api = client();
      const result = await api.request('createNode', { body: { hostname, ...(o.id ? { id: o.id } : {}) } });
      const instructions = await connectInstructions(api, result.node.id, result.token);
      print(result, () => `node ${nodeNamed(result.node)} registered\n${instructions}`);
    });
  nodes
    .command('token <node>')
    .description(
      'give a node (id or hostname) a new token, printed once with the command that connects it; the old token opens nothing from now on',
    )
    .action(async (node: string) => {
      const api = client();
      const { nodes: list } = await api.request('listNodes');
      const id = nodeIdIn(list, node);
      const named = nodeNamed(list.find((n) => n.id === id) as (typeof list)[number]);
      const result = await api.request('issueNodeToken', { params: { id } });
      const instructions = await connectInstructions(api, id, result.token);
      print(
        result,
        () =>
          `node ${named} has a new token\n${instructions}\n` +
          'a quantix-node already running with --token-file reads the file again: it connects once the new token is there',
      );
    });
  nodes
    .command('delete <node>')
    .description(
      'remove a node (id or hostname), after confirmation: its connection is closed and its token opens nothing (refused while VMs are on it)',
    )
    .option('--yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .action(async (node: string, o: { yes?: boolean }) => {
      const api = client();
      const id = await nodeIdOf(api, node);
      const found = await api.request('getNode', { params: { id } });
      const question = `Remove node ${nodeNamed(found)}, ${found.connectionState}? [y/N] `;
      if (!(await deletionConfirmed(o.yes, `node ${found.hostname}`, question))) return;
      await api.request('deleteNode', { params: { id } });
      out(`removed node ${nodeNamed(found)}`);
    });

  nodes
    .command('networks <node>')
    .description('the libvirt networks and host bridges of a node: what `vms create --network` can name')
    .action(async (node: string) => {
      const api = client();
      const result = await api.request('listNodeNetworks', { params: { id: await nodeIdOf(api, node) } });
      const rows = result.networks.map((n) => ({
        ...n,
        use: n.attachment === 'bridge' ? `bridge:${n.name}` : n.name,
        state: n.active ? 'active' : 'inactive',
        addresses: n.addresses.join(', ') || '-',
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
    .option('--search <text>', 'search names, OS, labels and file paths')
    // The name it had first (`images available` says --search, as this does now).
    .addOption(new Option('--text <text>', 'the same as --search').hideHelp())
    .action(async (o: Record<string, string | undefined>) => {
      const api = client();
      const { pools: poolList } = await api.request('listPools');
      const poolName = poolNamesIn(poolList);
      const search = o.search ?? o.text;
      const query = {
        // The server names a wrong kind (INVALID_INPUT), as it did before this was typed.
        ...(o.kind ? { kind: o.kind as 'cloud' | 'iso' } : {}),
        ...(o.phase ? { phase: o.phase } : {}),
        ...(o.pool ? { poolId: poolIdIn(poolList, o.pool) } : {}),
        ...(o.node ? { nodeId: await nodeIdOf(api, o.node) } : {}),
        ...(search ? { text: search } : {}),
      };
      const result = await allImages(api, query);
      print(
        result,
        () =>
          `${table(result.images, [
            'id',
            'name',
            'kind',
            'phase',
            { key: 'sizeBytes', heading: 'SIZE', show: bytes },
            // A pool's name is unique: it stands for the pool, as `--pool` takes it.
            {
              key: 'location.poolId',
              heading: 'POOL',
              show: (id) => poolName(String(id)),
            },
            o.node ? 'path' : { key: 'location.relPath', heading: 'PATH' },
          ])}\n${result.total} image(s)`,
      );
    });
  images
    .command('available')
    .description('what a VM on this node can boot from: images and catalog entries, with why one cannot be chosen')
    .option('--node <node>', 'the node (id or hostname; default: the only node, when there is one)')
    .option('--kind <kind>', 'cloud or iso')
    .option('--search <text>', 'search names, OS, labels and file paths (entries not downloaded: names and OS)')
    .action(async (o: { node?: string; kind?: string; search?: string }) => {
      const api = client();
      const query = {
        nodeId: nodeIdOrOnly((await api.request('listNodes')).nodes, o.node),
        ...(o.kind ? { kind: o.kind as 'cloud' | 'iso' } : {}),
        ...(o.search ? { text: o.search } : {}),
      };
      // Every page (1,000 each), as `images list` prints every image.
      let result = await api.request('listAvailableImages', { query });
      const all = [...result.images];
      while (result.images.length > 0 && all.length < result.total) {
        result = await api.request('listAvailableImages', { query: { ...query, offset: all.length } });
        all.push(...result.images);
      }
      result = { ...result, images: all };
      print(result, () => table(result.images, ['imageId', 'catalogId', 'name', 'kind', 'status', 'path', 'reason']));
    });
  images
    .command('catalog')
    .description('list the catalog entries images can be downloaded from')
    .action(async () => {
      const result = await client().request('listCatalog');
      print(result, () => table(result.entries, ['id', 'name', 'kind', 'sourceUrl']));
    });
  images
    .command('download <catalogId>')
    .description('download a catalog entry into a pool, verified, following its progress')
    .option(
      '--pool <pool>',
      'the pool to download into (id or name; default: the only pool that takes images, when there is one)',
    )
    .option('--node <node>', 'the node that downloads (id or hostname; default: one the pool is active on)')
    .option('--no-wait', 'return at once instead of following progress')
    .action(async (catalogId: string, o: { pool?: string; node?: string; wait: boolean }) => {
      const api = client();
      const image = await api.request('downloadImage', {
        body: {
          catalogId,
          poolId: await poolIdOrOnly(api, o.pool, 'images'),
          ...(o.node ? { nodeId: await nodeIdOf(api, o.node) } : {}),
        },
      });
      if (!o.wait) {
        // A download of an entry the pool already holds answers with that image: nothing started.
        return print(image, () =>
          image.phase === 'ready'
            ? `${catalogId} is already in the pool, ready: image ${image.id}`
            : `download of ${catalogId} started: image ${image.id}`,
        );
      }
      await follow(api, image);
    });
  images
    .command('import <url>')
    .description(
      'import a disk image (vmdk, vhd, vhdx, vdi, raw, qcow2; .xz/.gz/.zst/.bz2) or an OVA from a URL, converted on the node',
    )
    .option(
      '--pool <pool>',
      'the pool to import into (id or name; default: the only pool that takes images, when there is one)',
    )
    .option('--format <format>', 'what to convert to: qcow2 or raw', 'qcow2')
    .requiredOption(
      '--sha256 <hex>',
      'the SHA-256 of the file as downloaded (sha256sum prints it): the node verifies it',
    )
    .option('--source-format <format>', "what the file is, in qemu-img's names (vmdk, vpc, vhdx, vdi, raw, qcow2)")
    .option('--keep-original', 'keep the downloaded file beside the converted one (<image>.orig)')
    .option('--name <name>', 'the image name')
    .option('--node <node>', 'the node that imports (id or hostname; default: one the pool is active on)')
    .option('--no-wait', 'return at once instead of following progress')
    .action(
      async (
        url: string,
        o: {
          pool?: string;
          format: string;
          sha256: string;
          sourceFormat?: string;
          keepOriginal?: boolean;
          name?: string;
          node?: string;
          wait: boolean;
        },
      ) => {
        const api = client();
        const image = await api.request('importImage', {
          body: {
            url,
            poolId: await poolIdOrOnly(api, o.pool, 'images'),
            format: o.format as 'qcow2' | 'raw',
            keepOriginal: o.keepOriginal === true,
            sha256: o.sha256,
            ...(o.sourceFormat ? { sourceFormat: o.sourceFormat as 'vmdk' } : {}),
            ...(o.name ? { name: o.name } : {}),
            ...(o.node ? { nodeId: await nodeIdOf(api, o.node) } : {}),
          },
        });
        if (!o.wait) return print(image, () => `import of ${url} started: image ${image.id}`);
        await follow(api, image);
      },
    );
  images
    .command('copy <image>')
    .description(
      'copy a ready image into another pool (on its node, or fetched by the target node), verified, following its progress',
    )
    .requiredOption('--pool <pool>', 'the pool to copy into (id or name)')
    .option('--node <node>', 'the node that copies (id or hostname; default: one the pool is active on)')
    .option('--name <name>', 'the copy’s name (default: the source’s)')
    .option('--wait', 'follow progress until the copy is ready (the default)')
    .option('--no-wait', 'return at once instead of following progress')
    .action(async (value: string, o: { pool: string; node?: string; name?: string; wait?: boolean }) => {
      const api = client();
      const image = await api.request('copyImage', {
        params: { id: await imageIdOf(api, value) },
        body: {
          poolId: await poolIdOf(api, o.pool),
          ...(o.node ? { nodeId: await nodeIdOf(api, o.node) } : {}),
          ...(o.name ? { name: o.name } : {}),
        },
      });
      if (o.wait === false) return print(image, () => `copy of ${value} started: image ${image.id}`);
      await follow(api, image);
    });
  images
    .command('verify [image]')
    .description(
      'read an image’s file whole on its node and check it against the recorded checksum (recorded when there is none, as for a file a scan found); a file that is not the one recorded puts the image in error, out of use, until it is verified again',
    )
    .option('--accept', 'a file that is not the one recorded: record its checksum instead (the image is ready again)')
    .option(
      '--all',
      'every ready image, and every one a verify took out of use, one after another (a line each; exit 1 when any is not the file recorded or could not be read)',
    )
    .option('--pool <pool>', 'with --all: only the images in this pool (id or name)')
    .action(async (value: string | undefined, o: { accept?: boolean; all?: boolean; pool?: string }) => {
      if ((value === undefined) === (o.all !== true)) throw new UsageError('give an image, or --all');
      if (o.all && o.accept) throw new UsageError('--accept is for one image, not --all');
      if (o.pool !== undefined && !o.all) throw new UsageError('--pool goes with --all');
      const api = client();
      type Verified = ResponseBody<'verifyImage'>;
      const told = ({ outcome, image, checksum, recorded, nodeId }: Verified, nodeName: (id: string) => string) => {
        const read = `${checksum.algorithm} ${checksum.value}`;
        switch (outcome) {
          case 'recorded':
            return `recorded ${read} (${formatBytes(image.sizeBytes ?? 0)}, read on ${nodeName(nodeId)})`;
          case 'matches':
            return `${read} matches the recorded checksum`;
          case 'accepted':
            return `recorded ${read} in place of ${recorded?.value}`;
          case 'mismatch':
            return `the file's ${read} is not the ${recorded?.value} recorded`;
        }
      };
      if (value !== undefined) {
        const id = await imageIdOf(api, value);
        const [result, nodeName] = await Promise.all([
          api.request('verifyImage', { params: { id }, body: o.accept ? { accept: true } : {} }),
          nodeNamesOf(api),
        ]);
        const { image } = result;
        print(result, () => `${image.name}: ${told(result, nodeName)}`);
        if (result.outcome === 'mismatch') {
          const again = image.error?.retryable
            ? `, \`quantix images retry ${image.id}\` downloads it again`
            : '; or delete the image and upload it again';
          process.stderr.write(
            `the file is not the one recorded, and image ${image.name} is in error: no VM is made from it until \`quantix images verify ${image.id}\` finds the recorded bytes again (the file put back), \`quantix images verify ${image.id} --accept\` records the file as it is${again}\n`,
          );
          process.exitCode = 1;
        }
        return;
      }
      const [nodeName, { pools: poolList }] = await Promise.all([nodeNamesOf(api), api.request('listPools')]);
      const poolName = poolNamesIn(poolList);
      // Every image with a file to read: the ready ones, and those a verify found were not theirs.
      const images = (
        await allImages(api, { phase: 'ready,error', ...(o.pool ? { poolId: poolIdIn(poolList, o.pool) } : {}) })
      ).images.filter((image) => image.phase === 'ready' || image.error?.code === 'IMAGE_FILE_MISMATCH');
      const json = program.opts<{ json?: boolean }>().json === true;
      const results: (Verified | { image: (typeof images)[number]; error: { code: string; message: string } })[] = [];
      // One at a time: each is a whole read of a file on a node, which several at once would share.
      for (const image of images) {
        const which = `${image.name} (${image.location ? poolName(image.location.poolId) : 'no pool'})`;
        try {
          const result = await api.request('verifyImage', { params: { id: image.id }, body: {} });
          results.push(result);
          if (!json) out(`${which}: ${told(result, nodeName)}`);
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          results.push({ image, error: { code: error.code, message: error.message } });
          if (!json) out(`${which}: not read: ${error.code}: ${error.message}`);
        }
      }
      const count = (outcome: string) => results.filter((r) => 'outcome' in r && r.outcome === outcome).length;
      const unread = results.filter((r) => 'error' in r).length;
      const mismatched = count('mismatch');
      print(
        results,
        () =>
          `${results.length} image(s): ${count('matches')} as recorded, ${count('recorded')} recorded now, ${mismatched} not the file recorded (in error, out of use), ${unread} not read`,
      );
      if (mismatched > 0 || unread > 0) process.exitCode = 1;
    });
  images
    .command('retry <image>')
    .description('retry a failed download, or download again an image whose file went missing, following its progress')
    .option('--no-wait', 'return at once instead of following progress')
    .action(async (value: string, o: { wait: boolean }) => {
      const api = client();
      const image = await api.request('retryImageDownload', { params: { id: await imageIdOf(api, value) } });
      if (!o.wait) return print(image, () => `retrying ${image.name}`);
      await follow(api, image);
    });
  images
    .command('cancel <image>')
    .description(
      'stop a download, import or copy (id or name): what arrived stays, for `images retry` to resume from or `images delete` to remove',
    )
    .action(async (value: string) => {
      const api = client();
      const image = await api.request('cancelImageDownload', { params: { id: await imageIdOf(api, value) } });
      print(image, () =>
        image.phase === 'error' && image.error?.code === 'DOWNLOAD_CANCELLED'
          ? `cancelled ${image.name} (${image.id}); \`quantix images retry ${image.id}\` resumes it, \`quantix images delete ${image.id}\` removes it and what arrived`
          : `${image.name} (${image.id}) is ${image.phase}, not being downloaded: nothing to cancel`,
      );
    });
  images
    .command('upload <file>')
    .description(
      'upload an ISO or a disk image into a pool, resumably (tus): run it again after an interruption to continue',
    )
    .option(
      '--pool <pool>',
      'the pool to upload into (id or name; default: the only pool that takes its kind of file, when there is one)',
    )
    .option('--name <name>', 'the file name in the pool (default: the file’s own name)')
    .addOption(new Option('--kind <kind>', 'what the file is').choices(['iso', 'disk']))
    .option('--chunk-size <bytes>', 'bytes per request (for proxies that limit request bodies)', wholeNumber)
    .option('--no-wait', 'return once the control plane has the file, before the node has stored it')
    .action(
      async (
        file: string,
        o: { pool?: string; name?: string; kind?: 'iso' | 'disk'; chunkSize?: string; wait: boolean },
      ) => {
        const api = client();
        const name = o.name ?? basename(file);
        const kind = o.kind ?? uploadKindOf(name);
        const progress = progressReporter();
        const result = await resumableUpload({
          target: target(),
          path: file,
          poolId: await poolIdOrOnly(api, o.pool, kind === 'iso' ? 'iso' : 'images'),
          name,
          kind,
          ...(o.chunkSize ? { chunkSize: Number(o.chunkSize) } : {}),
          onProgress: (bytesDone, bytesTotal) =>
            progress.show({ label: `uploading ${name}`, percent: null, bytesDone, bytesTotal }),
        });
        progress.end();
        if (result.resumedFrom > 0)
          process.stderr.write(`resumed at byte ${result.resumedFrom} of ${result.sizeBytes}\n`);
        const image = await api.request('getImage', { params: { id: result.imageId } });
        if (!o.wait) return print(image, () => `uploaded ${name}: image ${image.id} (${image.phase})`);
        await follow(api, image);
      },
    );
  images
    .command('rescan')
    .description(
      'scan pools again for ISOs and disk images added or removed by hand (every pool, or one): new files become images, gone ones missing',
    )
    .option('--pool <pool>', 'only this pool (id or name)')
    .action(async (o: { pool?: string }) => {
      const api = client();
      // One read of the pools: the one named, and the names of those the answer lists.
      const [{ pools: known }, nodeName] = await Promise.all([api.request('listPools'), nodeNamesOf(api)]);
      const poolId = o.pool ? poolIdIn(known, o.pool) : undefined;
      const result = await api.request('rescanImages', { body: poolId ? { poolId } : {} });
      const poolName = (id: string) => known.find((p) => p.id === id)?.name ?? id;
      const named = (r: { poolId: string; nodeId: string }) => ({ pool: poolName(r.poolId), node: nodeName(r.nodeId) });
      const found = (r: (typeof result.scanned)[number]) =>
        [
          `${r.files} ${r.content === 'iso' ? 'ISO(s)' : 'disk image(s)'}`,
          ...(r.invalid.length ? [`${r.invalid.length} file(s) left out`] : []),
          ...(r.skipped.length ? [`${r.skipped.length} path(s) not looked into`] : []),
        ].join(', ');
      const rows = [
        ...result.scanned.map((r) => ({ ...named(r), result: found(r) })),
        ...result.failed.map((r) => ({ ...named(r), result: `failed: ${r.code} ${r.error}` })),
      ];
      // What a user looks for when a file they put in a pool does not show up: why it was not taken.
      const notes = result.scanned.flatMap((r) => {
        const where = `${named(r).pool} on ${named(r).node}`;
        return [
          ...r.invalid.map((f) => `left out: ${f.relPath} (${where}): ${f.code} ${f.message}`),
          ...r.skipped.map((f) => `not looked into: ${f.relPath} (${where}): ${f.reason}`),
        ];
      });
      print(result, () => [table(rows, ['pool', 'node', 'result']), ...notes].join('\n'));
      if (result.failed.length > 0) process.exitCode = 1;
    });
  images
    .command('follow <image>')
    .description(
      'follow upstream: check the catalog entry’s checksum file on a schedule, download new builds as revisions; for an image that follows already, change what is given',
    )
    .option(
      '--schedule <cron>',
      'when to check, cron in UTC ("0 */6 * * *": every six hours; six fields: seconds first) (default: "0 3 * * *", daily)',
    )
    .option(
      '--keep <n>',
      'how many ready revisions to keep (older ones go unless a VM uses them) (default: 3)',
      wholeNumber,
    )
    .action(async (value: string, o: { schedule?: string; keep?: string }) => {
      const api = client();
      const id = await imageIdOf(api, value);
      // What is left out stays as it is for an image that follows already; else the defaults.
      const current =
        o.schedule === undefined || o.keep === undefined
          ? await api.request('getImageFollow', { params: { id } }).catch((error: unknown) => {
              if (error instanceof ApiError && error.code === 'NOT_FOUND') return null;
              throw error;
            })
          : null;
      const status = await api.request('followImage', {
        params: { id },
        body: {
          schedule: o.schedule ?? current?.schedule ?? '0 3 * * *',
          keep: o.keep !== undefined ? Number(o.keep) : (current?.keep ?? 3),
        },
      });
      print(
        status,
        () =>
          `${value} follows upstream (${status.schedule}, keep ${status.keep}); next check ${iso(status.nextRunAt)}`,
      );
    });
  images
    .command('unfollow <image>')
    .description('stop following upstream (every revision stays)')
    .action(async (imageId: string) => {
      const api = client();
      await api.request('unfollowImage', { params: { id: await imageIdOf(api, imageId) } });
      out(`${imageId} no longer follows upstream`);
    });
  images
    .command('check-upstream <image>')
    .description('check a followed image’s upstream now; a new build starts downloading as the next revision')
    .action(async (imageId: string) => {
      const api = client();
      const check = await api.request('checkImageUpstream', { params: { id: await imageIdOf(api, imageId) } });
      print(check, () => `${check.outcome}: ${check.message}`);
    });
  images
    .command('show <image>')
    .description(
      'show an image (id or name): its phase (and error), pool and path, size and checksum, OS, source and labels',
    )
    .option('--node <node>', 'also show its path on this node (id or hostname)')
    .action(async (value: string, o: { node?: string }) => {
      const api = client();
      const [imageId, { pools: poolList }, nodeId] = await Promise.all([
        imageIdOf(api, value),
        api.request('listPools'),
        o.node ? nodeIdOf(api, o.node) : undefined,
      ]);
      // Whether it follows upstream, asked beside it: NOT_FOUND for an image that does not.
      const [image, follow] = await Promise.all([
        api.request('getImage', { params: { id: imageId }, query: nodeId ? { nodeId } : {} }),
        api.request('getImageFollow', { params: { id: imageId } }).catch((error: unknown) => {
          if (error instanceof ApiError && error.code === 'NOT_FOUND') return null;
          throw error;
        }),
      ]);
      const poolName = poolNamesIn(poolList);
      const { os } = image;
      const osText = [os.distribution ?? os.family, os.version, os.arch].filter(Boolean).join(' ');
      const guest = [os.cloudInit ? 'cloud-init' : null, os.defaultUser ? `user ${os.defaultUser}` : null]
        .filter(Boolean)
        .join(', ');
      const percent = image.progress?.percent;
      // A file a scan found has none until it is read: say how to read one.
      const checksumText = ({ checksum, phase, location, id }: typeof image) =>
        checksum
          ? `${checksum.algorithm} ${checksum.value}`
          : phase === 'ready' && location
            ? `no checksum yet (\`quantix images verify ${id}\` reads one)`
            : 'no checksum';
      print(image, () =>
        [
          `image ${image.name} (${image.id}) is ${image.phase}${percent != null && image.phase !== 'ready' ? ` (${percent}%)` : ''}: ${image.kind}${image.format && image.format !== image.kind ? `, ${image.format}` : ''}`,
          ...(image.error ? [`error ${image.error.code}: ${image.error.message}`] : []),
          image.location
            ? `in pool ${poolName(image.location.poolId)} at ${image.location.relPath}${nodeId ? ` (${image.path ?? 'not active'} on ${o.node})` : ''}`
            : 'no file (it has no place in a pool)',
          `size ${image.sizeBytes == null ? '-' : bytes(image.sizeBytes)}${image.virtualSizeBytes == null ? '' : ` (virtual ${bytes(image.virtualSizeBytes)})`}, ${checksumText(image)}`,
          `OS ${osText || 'unknown'}${guest ? ` (${guest})` : ''}; needs ${needsText(image.requirements)}`,
          ...(image.catalogId ? [`catalog entry ${image.catalogId}`] : []),
          ...(follow
            ? [
                // A revision's follow is its golden image's (the image first followed).
                `${follow.id === image.id ? '' : `a revision of image ${follow.id}, which `}follows upstream (${follow.schedule}, keep ${follow.keep}), revision ${follow.latestRevision} the latest; next check ${iso(follow.nextRunAt)}` +
                  (follow.lastCheck && follow.lastCheckAt
                    ? `; last ${iso(follow.lastCheckAt)}: ${follow.lastCheck.outcome}`
                    : ''),
              ]
            : []),
          ...(image.copiedFrom ? [`copied from image ${image.copiedFrom}`] : []),
          `created ${iso(image.createdAt)}, updated ${iso(image.updatedAt)}`,
          ...labelLines(image.labels),
        ].join('\n'),
      );
    });
  images
    .command('edit <image>')
    .description(
      'change an image’s (id or name) name, description, labels or requirements; what is left out stays (refused while it downloads)',
    )
    .option('--name <name>', 'new name')
    .option('--description <text>', 'new description')
    .option('--label <key=value>', 'set a label (repeatable)', collectLabel)
    .option('--unlabel <key>', 'remove a label (repeatable)', (key: string, keys: string[] = []) => [...keys, key])
    .option('--min-cpu <n>', 'vCPUs a VM of it needs at least', wholeNumber)
    .option('--min-memory <MiB>', 'memory in MiB a VM of it needs at least (0: none)', wholeNumber)
    .option('--min-disk <GiB>', 'disk in GiB a VM of it needs at least (0: none)', wholeNumber)
    .addOption(new Option('--firmware <kind>', 'firmware a VM of it needs').choices(['bios', 'uefi', 'any']))
    .action(
      async (
        value: string,
        o: {
          name?: string;
          description?: string;
          label?: Record<string, string>;
          unlabel?: string[];
          minCpu?: string;
          minMemory?: string;
          minDisk?: string;
          firmware?: 'bios' | 'uefi' | 'any';
        },
      ) => {
        const labels: Record<string, string | null> = { ...o.label };
        for (const key of o.unlabel ?? []) {
          if (key in labels) throw new UsageError(`label ${key} is both set (--label) and removed (--unlabel)`);
          labels[key] = null;
        }
        const requirements = {
          ...(o.minCpu === undefined ? {} : { minCpu: Number(o.minCpu) }),
          ...(o.minMemory === undefined ? {} : { minMemoryMiB: Number(o.minMemory) }),
          ...(o.minDisk === undefined ? {} : { minDiskGiB: Number(o.minDisk) }),
          ...(o.firmware === undefined ? {} : { firmware: o.firmware }),
        };
        const change = {
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.description !== undefined ? { description: o.description } : {}),
          ...(Object.keys(labels).length > 0 ? { labels } : {}),
          ...(Object.keys(requirements).length > 0 ? { requirements } : {}),
        };
        if (Object.keys(change).length === 0) {
          throw new UsageError(
            'nothing to change: give --name, --description, --label, --unlabel, --min-cpu, --min-memory, --min-disk or --firmware',
          );
        }
        const api = client();
        const image = await api.request('updateImage', { params: { id: await imageIdOf(api, value) }, body: change });
        print(image, () => `updated image ${image.name} (${image.id}): needs ${needsText(image.requirements)}`);
      },
    );
  images
    .command('revisions <image>')
    .description('a followed image’s revisions, newest first, with its schedule and last check')
    .action(async (value: string) => {
      const api = client();
      const imageId = await imageIdOf(api, value);
      const [status, { revisions }] = await Promise.all([
        api.request('getImageFollow', { params: { id: imageId } }),
        api.request('listImageRevisions', { params: { id: imageId } }),
      ]);
      const rows = revisions.map((r) => ({
        revision: r.revision,
        imageId: r.imageId,
        phase: r.image.phase,
        checksum: r.checksum ?? '',
        kept: status.keptInUse.some((k) => k.revision === r.revision) ? 'in use by a VM' : '',
      }));
      print({ follow: status, revisions }, () =>
        [
          `schedule ${status.schedule}, keep ${status.keep}, next check ${iso(status.nextRunAt)}`,
          `last check: ${status.lastCheck ? `${status.lastCheck.outcome} at ${iso(status.lastCheckAt)}: ${status.lastCheck.message}` : 'none yet'}`,
          table(rows, ['revision', 'imageId', 'phase', 'checksum', 'kept']),
        ].join('\n'),
      );
    });
  images
    .command('export <image>')
    .description(
      'download an image’s file: written to FILE.part (a broken export resumes from it), checked against the image’s checksum, then named FILE',
    )
    .requiredOption('-o, --output <file>', 'where to write it')
    .option('--force', 'replace an existing FILE that is not this image (once the export is whole)')
    .action(async (value: string, o: { output: string; force?: boolean }) => {
      const progress = progressReporter();
      const api = client();
      const result = await exportImageContent(api, {
        imageId: await imageIdOf(api, value),
        file: o.output,
        replace: o.force === true,
        onProgress: (bytesDone, bytesTotal) =>
          progress.show({ label: basename(o.output), percent: null, bytesDone, bytesTotal }),
      });
      progress.end();
      print(result, () =>
        result.alreadyThere
          ? `${o.output}: already this image (${result.sizeBytes} bytes, sha256 ${result.sha256}, verified); nothing fetched`
          : `${o.output}: ${result.sizeBytes} bytes${result.resumedFrom ? ` (resumed at ${result.resumedFrom})` : ''}, sha256 ${result.sha256}${result.verified ? ' (verified)' : ' (the image has no SHA-256 to check against)'}`,
      );
    });
  images
    .command('delete <image>')
    .description('delete an image and its file, after confirmation (refused while a VM uses it)')
    .option('--yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .option('--keep-file', 'forget the image only: its file stays where it is (a pool no node can reach any more)')
    .action(async (value: string, o: { yes?: boolean; keepFile?: boolean }) => {
      const api = client();
      const [image, { pools: poolList }] = await Promise.all([
        imageIdOf(api, value).then((id) => api.request('getImage', { params: { id } })),
        api.request('listPools'),
      ]);
      const { location } = image;
      const file = location ? `${poolNamesIn(poolList)(location.poolId)}:${location.relPath}` : null;
      const what = o.keepFile
        ? `image ${image.name} (${image.phase}), leaving its file`
        : `image ${image.name} (${image.phase}) and its file`;
      const question = `Delete ${what} (${file ?? 'no file'})? [y/N] `;
      if (!(await deletionConfirmed(o.yes, `image ${image.name}`, question))) return;
      await api.request('deleteImage', { params: { id: image.id }, query: o.keepFile ? { keepFile: 'true' } : {} });
      const done = !file
        ? '; it had no file'
        : image.phase === 'missing'
          ? '; its file was gone already'
          : o.keepFile
            ? `; its file ${file} stays`
            : ' and its file';
      out(`deleted image ${image.name} (${image.id})${done}`);
    });

  /** Follows a download (or retry) until ready or failed, progress on stderr; a failure throws. */
  const follow = async (api: QuantixClient, image: Pick<ResponseBody<'downloadImage'>, 'id'>) => {
    const progress = progressReporter();
    for (;;) {
      const current = await api.request('getImage', { params: { id: image.id } }).catch((error: unknown) => {
        if (!(error instanceof ApiError) || error.code !== 'UNREACHABLE') throw error;
        progress.end();
        // Only the following stopped: the transfer is the control plane's, which resumes it when back.
        throw new ApiError(
          0,
          error.code,
          `${error.message}; image ${image.id} stays recorded there, and its transfer goes on (or resumes once the control plane is back): \`quantix images show ${image.id}\` tells how it stands`,
        );
      });
      if (current.progress) {
        const { stage, ...figures } = current.progress;
        const label = stage && stage !== 'downloading' ? `${current.name} (${stage})` : String(current.name);
        progress.show({ label, ...figures });
      }
      if (current.phase === 'ready' || current.phase === 'error') {
        progress.end();
        if (current.phase === 'error') {
          const { code, message } = current.error ?? { code: 'DOWNLOAD_FAILED', message: 'no reason given' };
          throw new ApiError(0, code, `download failed: ${message}`, {});
        }
        return print(current, () => `${current.name} is ready (${current.id})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  /** A VM's addresses as its node reports them now; none for a VM without NICs or not running. */
  const addressesOf = async (
    api: QuantixClient,
    vm: { id: string; state: string; nics: unknown[] },
  ): Promise<ResponseBody<'getVmAddresses'>['addresses']> => {
    if (vm.nics.length === 0 || vm.state !== 'running') return [];
    try {
      return (await api.request('getVmAddresses', { params: { id: vm.id } })).addresses;
    } catch (error) {
      // A node that is away leaves the addresses unknown; the listing still shows.
      if (error instanceof ApiError && error.code === 'NODE_NOT_CONNECTED') return [];
      throw error;
    }
  };
  const addressText = (addresses: { family: string; address: string }[]) =>
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
      // One read of the nodes: the one named, and the names of those the VMs are on.
      const { nodes: known } = await api.request('listNodes');
      const result = await api.request('listVms', { query: o.node ? { nodeId: nodeIdIn(known, o.node) } : {} });
      const nodeName = nodeNamesIn(known);
      const rows = await Promise.all(
        result.vms.map(async (vm) => ({
          ...vm,
          node: nodeName(vm.nodeId),
          addresses: addressText(await addressesOf(api, vm)),
        })),
      );
      print(result, () =>
        table(rows, [
          'id',
          'name',
          'node',
          'state',
          'addresses',
          { key: 'cpu', heading: 'CPUS' },
          { key: 'memoryMiB', heading: 'MEMORY', show: unit('MiB') },
          'error',
        ]),
      );
    });
  vms
    .command('create <name>')
    .description(
      "create a VM from a ready image and start it; CPUs, memory and disk left out are the image's OS's recommended resources from osinfo-db (else 1 vCPU, 1024 MiB, 10 GiB), never more than the node has",
    )
    .option('--node <node>', 'the node to run it on (id or hostname; default: the only node, when there is one)')
    .requiredOption('--image <image>', 'a ready image (cloud image or ISO) reachable from that node (id or name)')
    .option('--cpu <n>', "vCPUs (default: the OS's recommended)", wholeNumber)
    .option('--memory <MiB>', "memory in MiB (default: the OS's recommended)", wholeNumber)
    .option('--disk <GiB>', "disk size in GiB (default: the OS's recommended storage)", wholeNumber)
    .option('--ssh-key <key...>', 'authorized SSH keys for cloud images')
    .option(
      '--network <network>',
      'a NIC on this network of the node: a libvirt network (`default`: its NAT) or bridge:<name> (bridge:br0); repeat for more NICs, in order (see `nodes networks`); none given, the VM has no NIC',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .action(
      async (
        name: string,
        o: {
          node?: string;
          image: string;
          cpu?: string;
          memory?: string;
          disk?: string;
          sshKey?: string[];
          network?: string[];
        },
      ) => {
        let networks: ReturnType<typeof parseNicReference>[];
        // Core's whole entry (its schemas) only for the command that parses NIC references.
        const { parseNicReference: parseNic } = await import('@quantix/core');
        try {
          networks = (o.network ?? []).map((text) => parseNic(text));
        } catch (error) {
          throw new UsageError(`--network: ${(error as Error).message}`);
        }
        const api = client();
        const { nodes: known } = await api.request('listNodes');
        const image = await bootImageOf(api, o.image);
        const vm = await api.request('createVm', {
          body: {
            name,
            nodeId: nodeIdOrOnly(known, o.node),
            imageId: image.id,
            ...(o.cpu === undefined ? {} : { cpu: Number(o.cpu) }),
            ...(o.memory === undefined ? {} : { memoryMiB: Number(o.memory) }),
            ...(o.disk === undefined ? {} : { diskGiB: Number(o.disk) }),
            sshAuthorizedKeys: o.sshKey ?? [],
            networks,
          },
        });
        const nodeName = nodeNamesIn(known);
        print(
          vm,
          () =>
            `VM ${vm.name} (${vm.id}) is ${vm.state} on node ${nodeName(vm.nodeId)}: ${vm.cpu} vCPU, ${vm.memoryMiB} MiB, ${(vm.disks as Row[])[0]?.sizeGiB ?? '?'} GiB${image.revision ? `, from revision ${image.revision.number} of ${o.image}, the newest ready (${image.id})` : ''}`,
        );
      },
    );
  /**
   * The image a VM boots from, as `--image` names it (imageIdOf). An image that follows upstream,
   * named by its name or catalog entry, means its newest ready revision: the build a new VM is
   * wanted on. Its id (a UUID) means that very image, whatever revision it is.
   */
  const bootImageOf = async (
    api: QuantixClient,
    value: string,
  ): Promise<{ id: string; revision: { number: number } | null }> => {
    const id = await imageIdOf(api, value);
    if (UUID_SHAPE.test(value)) return { id, revision: null };
    const followed = await api
      .request('listImageRevisions', { params: { id } })
      .catch((error: unknown) =>
        error instanceof ApiError && error.code === 'NOT_FOUND' ? null : Promise.reject(error),
      );
    const newest = followed?.revisions.find((r) => r.image.phase === 'ready');
    if (!newest || newest.imageId === id) return { id, revision: null };
    return { id: newest.imageId, revision: { number: newest.revision } };
  };
  /** A VM as GET /vms/{id} shows it (by id or name): state, disks and CD-ROMs with their paths. */
  const showVm = (api: QuantixClient, vm: string) => api.request('showVm', { params: { id: vm } });
  /** A VM's id from its id or its name. */
  const vmIdOf = async (api: QuantixClient, vm: string) => (await showVm(api, vm)).id;
  vms
    .command('show <vm>')
    .description(
      'show a VM (id or name): its state, node, CPUs, memory, its disks and CD-ROMs with their paths, and its NICs (network, MAC) with the addresses it can be reached at',
    )
    .action(async (name: string) => {
      const api = client();
      const vm = await showVm(api, name);
      const [addresses, nodeName, { pools: poolList }] = await Promise.all([
        addressesOf(api, vm),
        nodeNamesOf(api),
        api.request('listPools'),
      ]);
      const poolName = poolNamesIn(poolList);
      const media = (rows: unknown) =>
        (rows as Row[]).map((d) => ({
          ...d,
          path: d.path ?? `${poolName(String(d.poolId))}:${d.relPath} (pool not active on the node)`,
        }));
      print({ ...vm, addresses }, () =>
        [
          `VM ${vm.name} (${vm.id}) is ${vm.state}${vm.error ? ` — ${vm.error}` : ''}`,
          `node ${nodeName(vm.nodeId)}${vm.nodeConnected ? '' : ' (not connected)'}, ${vm.cpu} vCPU, ${vm.memoryMiB} MiB, ${vm.firmware}`,
          '',
          table(media(vm.disks), [
            { key: 'path', heading: 'DISK' },
            { key: 'sizeGiB', heading: 'SIZE', show: unit('GiB') },
            'format',
            'bus',
            'imageId',
          ]),
          ...((vm.cdroms as Row[]).length > 0
            ? ['', table(media(vm.cdroms), [{ key: 'path', heading: 'CD-ROM' }, 'imageId'])]
            : []),
          '',
          vm.nics.length === 0
            ? 'no NIC (the VM is on no network)'
            : table(
                vm.nics.map((nic) => ({
                  ...nic,
                  network: nic.attachment === 'bridge' ? `bridge:${nic.source}` : nic.source,
                  addresses: addressText(addresses.filter((a) => a.mac === nic.mac)),
                })),
                [{ key: 'network', heading: 'NIC NETWORK' }, 'model', 'mac', 'addresses'],
              ),
        ].join('\n'),
      );
    });
  vms
    .command('start <vm>')
    .description('start a stopped VM, or let a paused one run on (id or name)')
    .action(async (name: string) => {
      const api = client();
      const vm = await api.request('startVm', { params: { id: await vmIdOf(api, name) } });
      print(vm, () => `VM ${vm.name} is ${vm.state}`);
    });
  vms
    .command('stop <vm>')
    .description(
      'shut a VM (id or name) down (ACPI) and wait for the guest to power off; fails (exit 1) if it does not within the timeout, unless --force',
    )
    .option('--force', 'power the VM off if the guest has not shut down by the end of the timeout')
    .option(
      '--timeout <seconds>',
      'how long the guest gets to shut down (default 60; 0 with --force: power off at once)',
      wholeNumber,
    )
    .action(async (name: string, o: { force?: boolean; timeout?: string }) => {
      const api = client();
      const id = await vmIdOf(api, name);
      // The answer comes once the guest is off (a minute, say): a terminal is told what it waits for.
      // --force without --timeout powers off at once: nothing to wait for.
      const waits = o.timeout === undefined ? !o.force : Number(o.timeout) > 0;
      if (waits && process.stderr.isTTY) {
        process.stderr.write(
          `asked ${name}'s guest to shut down (ACPI); waiting for it to power off${o.timeout === undefined ? '' : ` (up to ${o.timeout} s)`}${o.force ? ', else powering it off' : ''}\n`,
        );
      }
      const vm = await api.request('stopVm', {
        params: { id },
        body: { force: Boolean(o.force), ...(o.timeout === undefined ? {} : { timeoutSeconds: Number(o.timeout) }) },
      });
      print(vm, () => `VM ${vm.name} is ${vm.state}`);
    });
  vms
    .command('reboot <vm>')
    .description('reboot a running VM (id or name): an ACPI reboot the guest carries out')
    .action(async (name: string) => {
      const api = client();
      const vm = await api.request('rebootVm', { params: { id: await vmIdOf(api, name) } });
      print(vm, () => `VM ${vm.name} is rebooting (${vm.state})`);
    });
  vms
    .command('eject <vm>')
    .description(
      'take the ISOs out of a VM’s CD-ROM drives (id or name), running or stopped: it boots from its disk after, and the ISOs can be deleted',
    )
    .action(async (name: string) => {
      const api = client();
      const before = await showVm(api, name);
      const vm = await api.request('ejectVmCdroms', { params: { id: before.id } });
      const ejected = (before.cdroms as Row[]).map((cdrom) => String(cdrom.relPath));
      print(vm, () =>
        ejected.length === 0
          ? `VM ${vm.name} has no ISO in its CD-ROM drives`
          : `ejected ${ejected.join(', ')} from VM ${vm.name}`,
      );
    });
  vms
    .command('insert <vm> <image>')
    .description(
      'put a ready ISO into a VM’s empty CD-ROM drive (id or name), running or stopped: drivers, a rescue system, its installer again; `vms eject` takes it out',
    )
    .action(async (name: string, value: string) => {
      const api = client();
      const [before, imageId] = await Promise.all([showVm(api, name), imageIdOf(api, value)]);
      const vm = await api.request('insertVmCdrom', { params: { id: before.id }, body: { imageId } });
      const held = (cdroms: unknown) => (cdroms as Row[]).find((cdrom) => cdrom.imageId === imageId);
      const iso = String(held(vm.cdroms)?.relPath ?? imageId);
      print(vm, () =>
        held(before.cdroms)
          ? `VM ${vm.name} has ${iso} in its CD-ROM drive already`
          : `inserted ${iso} into VM ${vm.name}`,
      );
    });
  vms
    .command('resize <vm>')
    .description('give a stopped VM (id or name) other vCPUs or memory, from its next start; what is left out stays')
    .option('--cpu <n>', 'vCPUs', wholeNumber)
    .option('--memory <MiB>', 'memory in MiB', wholeNumber)
    .action(async (name: string, o: { cpu?: string; memory?: string }) => {
      if (o.cpu === undefined && o.memory === undefined) throw new UsageError('give --cpu, --memory or both');
      const api = client();
      const before = await showVm(api, name);
      const vm = await api.request('resizeVm', {
        params: { id: before.id },
        body: {
          ...(o.cpu === undefined ? {} : { cpu: Number(o.cpu) }),
          ...(o.memory === undefined ? {} : { memoryMiB: Number(o.memory) }),
        },
      });
      print(
        vm,
        () =>
          `VM ${vm.name}: ${before.cpu} → ${vm.cpu} vCPU, ${before.memoryMiB} → ${vm.memoryMiB} MiB, from its next start`,
      );
    });
  vms
    .command('delete <vm>')
    .description(
      'delete a VM (id or name) and the disks made for it (its overlay or disk and its cloud-init seed; never the image it was made from), after confirmation',
    )
    .option('--yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .action(async (name: string, o: { yes?: boolean }) => {
      const api = client();
      const [vm, nodeName] = await Promise.all([showVm(api, name), nodeNamesOf(api)]);
      const files = [...(vm.disks as Row[])].map((d) => d.path ?? `${d.poolId}:${d.relPath}`);
      const question = `Delete VM ${vm.name} (${vm.state}) on ${nodeName(vm.nodeId)} and its disks (${files.join(', ') || 'none'})? [y/N] `;
      if (!(await deletionConfirmed(o.yes, `VM ${vm.name}`, question))) return;
      await api.request('deleteVm', { params: { id: vm.id } });
      out(`deleted VM ${vm.name} and its disks`);
    });
}

/** A pool as its messages name it: by its name, with its id when that is something else (a UUID, say). */
/** Where a pool is, as `pools create` and `pools update` were given it: only the flags given. */
function placeGiven(o: {
  path?: unknown;
  create?: unknown;
  server?: unknown;
  export?: unknown;
  mountPoint?: unknown;
}): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries({
      path: o.path,
      create: o.create,
      server: o.server,
      export: o.export,
      mountPoint: o.mountPoint,
    }).filter(([, value]) => value !== undefined),
  );
}

function poolNamed(pool: { id: string; name: string }): string {
  return pool.name === pool.id ? pool.name : `${pool.name} (${pool.id})`;
}

/** A node as messages name it: by hostname, with its id where that differs. */
function nodeNamed(node: { id: string; hostname: string }): string {
  return node.hostname === node.id ? node.hostname : `${node.hostname} (${node.id})`;
}

/**
 * Where a node's token goes and the command that connects it, as `nodes add` and `nodes token`
 * print them. With several replicas that have their own URLs, one `--url` each (the node moves to
 * another when one goes); else the URL this CLI talks to.
 */
async function connectInstructions(api: QuantixClient, nodeId: string, token: string): Promise<string> {
  const { replicas } = await api.request('listReplicas').catch(() => ({ replicas: [] }));
  const { installToken, startDaemon } = nodeConnectCommands({ url: api.baseUrl, replicas, nodeId, token });
  return [
    `token: ${token}`,
    'run on the node (the token in a file only root can read, never on the command line):',
    `  ${installToken}`,
    `  ${startDaemon}`,
  ].join('\n');
}

/**
 * Whether to delete `what`: yes with `--yes`; else asked on the terminal (a usage error without
 * one: a script must say --yes). No answer but yes: says so, exit code 1, and false.
 */
async function deletionConfirmed(yes: boolean | undefined, what: string, question: string): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY) {
    throw new UsageError(`not deleting ${what} without confirmation: stdin is not a terminal; give --yes`);
  }
  if (/^y(es)?$/i.test((await ask(question)).trim())) return true;
  process.stderr.write(`${what} was not deleted\n`);
  process.exitCode = 1;
  return false;
}

/** One line read from the terminal after a prompt on stderr. */
async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}

/** Says, on stderr, that a secret came in argv, where every local user can read it with ps. */
export function warnArgvSecret(what: string, instead: string): void {
  process.stderr.write(
    `warning: ${what} on the command line, where every user of this machine can read it (ps); use ${instead}\n`,
  );
}

/** Prints an API error as the user can act on it, and sets a failing exit code. */
export function reportError(error: unknown): void {
  if (error instanceof UsageError) {
    process.stderr.write(`error: ${terminalSafe(error.message)}\n`);
    process.exitCode = 2;
    return;
  }
  if (error instanceof ApiError || isQuantixError(error)) {
    process.stderr.write(`error ${error.code}: ${terminalSafe(error.message)}\n`);
  } else {
    process.stderr.write(`error: ${terminalSafe((error as Error)?.message ?? String(error))}\n`);
  }
  process.exitCode = 1;
}

/** `--label key=value`, gathered into one object; anything without `=` is a usage error (exit 2). */
function collectLabel(text: string, labels: Record<string, string> = {}): Record<string, string> {
  const [key, value] = text.split(/=(.*)/s);
  if (!key || value === undefined) throw new InvalidArgumentError(`${JSON.stringify(text)} is not key=value.`);
  return { ...labels, [key]: value };
}

/** An image's requirements as `images show` prints them: what its source said a VM needs, firmware included. */
function needsText(needs: { minCpu: number; minMemoryMiB: number; minDiskGiB: number; firmware: string }): string {
  return [
    `${needs.minCpu} vCPU`,
    ...(needs.minMemoryMiB ? [`${needs.minMemoryMiB} MiB`] : []),
    ...(needs.minDiskGiB ? [`${needs.minDiskGiB} GiB of disk`] : []),
    ...(needs.firmware !== 'any' ? [needs.firmware] : []),
  ].join(', ');
}
