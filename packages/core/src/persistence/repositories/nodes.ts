import type { Knex } from 'knex';
import type { NodeConnectionChange, NodeFilter, NodeRepository, UpdateOptions } from '../../contracts/repositories.js';
import { newId } from '../../domain/ids.js';
import { type NewNode, type Node, type NodePatch, validateNewNode, validateNodePatch } from '../../domain/node.js';
import { ErrorCode, QuantixError } from '../../errors.js';
import { fromJson, toDate, toJson, toNullableDate, toNumber } from '../rows.js';
import { applyPage, deleteVersioned, guarded, notFound, type Row, updateVersioned } from './common.js';

const TABLE = 'nodes';
const WHAT = 'Node';

function rowToNode(row: Row): Node {
  return {
    id: row.id as string,
    hostname: row.hostname as string,
    address: (row.address as string | null) ?? null,
    labels: fromJson(row.labels),
    connectionState: row.connection_state as Node['connectionState'],
    lastSeenAt: toNullableDate(row.last_seen_at),
    agentVersion: (row.agent_version as string | null) ?? null,
    capabilities: fromJson(row.capabilities),
    version: toNumber(row.version),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

function nodeToColumns(node: NodePatch): Row {
  const row: Row = {};
  if (node.hostname !== undefined) row.hostname = node.hostname;
  if (node.address !== undefined) row.address = node.address;
  if (node.labels !== undefined) row.labels = toJson(node.labels);
  if (node.connectionState !== undefined) row.connection_state = node.connectionState;
  if (node.lastSeenAt !== undefined) row.last_seen_at = node.lastSeenAt;
  if (node.agentVersion !== undefined) row.agent_version = node.agentVersion;
  if (node.capabilities !== undefined) row.capabilities = toJson(node.capabilities);
  return row;
}

export class KnexNodeRepository implements NodeRepository {
  constructor(private readonly knex: Knex) {}

  async create(input: NewNode): Promise<Node> {
    const node = validateNewNode(input);
    const [row] = await guarded(WHAT, () =>
      this.knex(TABLE)
        .insert({ id: node.id ?? newId(), ...nodeToColumns(node) })
        .returning('*'),
    );
    return rowToNode(row as Row);
  }

  async get(id: string): Promise<Node | undefined> {
    const row = await guarded(WHAT, () => this.knex(TABLE).where({ id }).first());
    return row ? rowToNode(row) : undefined;
  }

  async require(id: string): Promise<Node> {
    const node = await this.get(id);
    if (!node) throw notFound(WHAT, id);
    return node;
  }

  async getByHostname(hostname: string): Promise<Node | undefined> {
    const row = await guarded(WHAT, () => this.knex(TABLE).where({ hostname }).first());
    return row ? rowToNode(row) : undefined;
  }

  async list(filter: NodeFilter = {}): Promise<Node[]> {
    const query = this.knex(TABLE).select('*');
    if (filter.connectionState !== undefined) query.where('connection_state', filter.connectionState);
    if (filter.labels !== undefined && Object.keys(filter.labels).length > 0) {
      query.whereRaw('labels @> ?::jsonb', [JSON.stringify(filter.labels)]);
    }
    query.orderBy([{ column: 'created_at' }, { column: 'id' }]);
    const rows = await guarded(WHAT, () => applyPage(query, filter));
    return (rows as Row[]).map(rowToNode);
  }

  async update(id: string, patch: NodePatch, options: UpdateOptions = {}): Promise<Node> {
    const valid = validateNodePatch(patch);
    const row = await updateVersioned(this.knex, {
      table: TABLE,
      id,
      what: WHAT,
      expectedVersion: options.expectedVersion,
      build: () => nodeToColumns(valid),
    });
    return rowToNode(row);
  }

  async setTokenDigest(id: string, sha256Hex: string | null): Promise<void> {
    if (sha256Hex !== null && !/^[0-9a-f]{64}$/.test(sha256Hex)) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'A node token digest must be 64 lower-case hex digits (SHA-256)');
    }
    const updated = await guarded(WHAT, () => this.knex(TABLE).where({ id }).update({ token_sha256: sha256Hex }));
    if (updated === 0) throw notFound(WHAT, id);
  }

  async getTokenDigest(id: string): Promise<string | null> {
    const row = await guarded(WHAT, () => this.knex(TABLE).where({ id }).first('token_sha256'));
    if (!row) throw notFound(WHAT, id);
    return (row as Row).token_sha256 as string | null;
  }

  async getTokenDigests(ids: readonly string[]): Promise<Map<string, string | null>> {
    if (ids.length === 0) return new Map();
    // One array parameter, not one a node: the same statement text whatever the batch (planned
    // once), where `in (…)` made a statement of its own, with hundreds of parameters, per batch size.
    const rows = (await guarded(WHAT, () =>
      this.knex(TABLE)
        .whereRaw('id = any(?::text[])', [[...new Set(ids)]])
        .select('id', 'token_sha256'),
    )) as Row[];
    return new Map(rows.map((row) => [row.id as string, (row.token_sha256 as string | null) ?? null]));
  }

  async setConnectionStates(changes: readonly NodeConnectionChange[]): Promise<string[]> {
    if (changes.length === 0) return [];
    const valid = changes.map((change) => ({
      id: change.id,
      ...validateNodePatch({
        connectionState: change.connectionState,
        ...(change.agentVersion !== undefined ? { agentVersion: change.agentVersion } : {}),
        ...(change.capabilities !== undefined ? { capabilities: change.capabilities } : {}),
      }),
    }));
    // One statement for the batch; a node given twice keeps its last change.
    const last = [...new Map(valid.map((change) => [change.id, change])).values()];
    const result = await guarded(WHAT, () =>
      this.knex.raw(
        `update ${TABLE} n set connection_state = c.connection_state, last_seen_at = now(),
                agent_version = case when c.set_agent then c.agent_version else n.agent_version end,
                capabilities = coalesce(c.capabilities::jsonb, n.capabilities),
                version = n.version + 1, updated_at = now()
           from unnest(?::text[], ?::text[], ?::boolean[], ?::text[], ?::text[])
             as c(id, connection_state, set_agent, agent_version, capabilities)
          where n.id = c.id
         returning n.id`,
        [
          last.map((c) => c.id),
          last.map((c) => c.connectionState as string),
          last.map((c) => c.agentVersion !== undefined),
          last.map((c) => c.agentVersion ?? null),
          last.map((c) => (c.capabilities !== undefined ? toJson(c.capabilities) : null)),
        ] as Knex.RawBinding[],
      ),
    );
    return (result as { rows: Row[] }).rows.map((row) => row.id as string);
  }

  async delete(id: string, options: UpdateOptions = {}): Promise<void> {
    await deleteVersioned(this.knex, { table: TABLE, id, what: WHAT, expectedVersion: options.expectedVersion });
  }
}
