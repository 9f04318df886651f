import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type {
  ImageFileState,
  ImageFilter,
  ImagePage,
  ImagePageQuery,
  ImageRepository,
  ImageUpdateOptions,
  RankedImages,
  RankedImagesQuery,
  UpdateOptions,
  UpsertResult,
} from '../../contracts/repositories.js';
import { imageIdForLocation, newId } from '../../domain/ids.js';
import {
  assertImageTransition,
  type DiscoveredImage,
  type Image,
  type ImagePatch,
  type ImagePhase,
  type NewImage,
  type ValidDiscoveredImage,
  validateDiscoveredImage,
  validateImagePatch,
  validateNewImage,
} from '../../domain/image.js';
import { assertRelPath } from '../../domain/paths.js';
import type { PoolNodeState } from '../../domain/pool.js';
import { ErrorCode, QuantixError } from '../../errors.js';
import { fromJson, toDate, toJson, toNullableDate, toNullableNumber, toNumber } from '../rows.js';
import { applyPage, deleteVersioned, guarded, likePattern, notFound, type Row, updateVersioned } from './common.js';
import { IMAGE_SEARCH_CONDITION, IMAGE_SEARCH_INDEX } from './image-search.js';

const TABLE = 'images';
/**
 * The columns an image is read with, named rather than `*`: a prepared statement whose result
 * gains a column (a later migration, run by another replica) fails with "cached plan must not
 * change result type" on every connection that prepared it, where with named columns it is simply
 * planned again; and the stored search text (migration 0017) stays in the database.
 */
const IMAGE_COLUMNS = [
  'id',
  'name',
  'description',
  'labels',
  'kind',
  'format',
  'os',
  'requirements',
  'catalog_id',
  'phase',
  'progress',
  'size_bytes',
  'virtual_size_bytes',
  'checksum',
  'error',
  'pool_id',
  'rel_path',
  'node_id',
  'file_modified_at',
  'version',
  'created_at',
  'updated_at',
] as const;
const WHAT = 'Image';
/** The deepest cut of the view's streams written into its statement (see listRankedForNode). */
const MAX_WRITTEN_DEPTH = 2048;
/** Rows per INSERT of a batch upsert: 14 parameters each stays well under PostgreSQL's 65,535. */
const UPSERT_CHUNK = 1000;

/**
 * The list cursor: the last row's created_at in microseconds (exact, unlike a JavaScript Date) and
 * its id, as base64url JSON. Opaque to clients.
 */
function encodeListCursor(micros: string, id: string): string {
  return Buffer.from(JSON.stringify([micros, id])).toString('base64url');
}

function decodeListCursor(cursor: string): [string, string] {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      /^-?\d{1,19}$/.test(value[0]) &&
      typeof value[1] === 'string' &&
      value[1].length > 0
    ) {
      return [value[0], value[1]];
    }
  } catch {
    // Not JSON: refused below like any other cursor this server did not make.
  }
  throw new QuantixError(ErrorCode.INVALID_INPUT, 'The cursor is not one a page of this list returned', {
    details: { issues: [{ path: 'after', message: 'not a cursor of this list' }] },
  });
}

/**
 * A statement of a fixed shape (a page, a get by id, the VM-creation view). Texts come from a few
 * fixed shapes, never from input. It is kept prepared on each connection under a name made from
 * its text: parsed once and planned a few times per connection instead of on every request
 * (parsing and planning a page's 2 KB text cost more than running it).
 *
 * A search's statements are planned per call instead (`plan: 'per-call'`): for a search the best
 * plan depends on how many rows the text matches, which only its value tells. With the text
 * known, PostgreSQL walks the list order until a page is full when most rows match and reads the
 * trigram index when few do; a generic plan, made once for every text, reads the index and
 * sorts every match, ~3x the time for a word every image holds (bench/repository, "every image
 * matches"). Planning costs ~0.1-0.2 ms a statement, which the rare words pay.
 *
 * On PostgreSQL it goes straight to a pooled connection, its text turned into `$n` form once per
 * shape: knex would do that again on every call, and placing the bindings of a 2 KB text cost a
 * listing more than serializing its page. Listeners of knex's `query` event (logs, the api bench)
 * still hear of it.
 */
async function runStatement(
  knex: Knex,
  sql: string,
  bindings: readonly Knex.RawBinding[],
  plan: 'prepared' | 'per-call' = 'prepared',
): Promise<{ rows: Row[] }> {
  let statement = statements.get(sql);
  if (statement === undefined) {
    statement = {
      name: `quantix_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`,
      positional: positionalText(sql),
    };
    statements.set(sql, statement);
  }
  const name = plan === 'prepared' ? statement.name : undefined;
  const direct = knex.client.config.client === 'pg' && !knex.isTransaction && statement.positional !== null;
  if (!direct || statement.positional?.count !== bindings.length) {
    return name === undefined ? knex.raw(sql, bindings) : knex.raw(sql, bindings).options({ name });
  }
  // As knex tells it: the text in `$n` form.
  const text = statement.positional.text;
  knex.client.emit('query', { method: 'raw', sql: text, bindings, options: name === undefined ? {} : { name } });
  const connection = (await knex.client.acquireConnection()) as {
    query(config: { name?: string; text: string; values: readonly unknown[] }): Promise<{ rows: Row[] }>;
  };
  try {
    return await connection.query(name === undefined ? { text, values: bindings } : { name, text, values: bindings });
  } finally {
    await knex.client.releaseConnection(connection);
  }
}

/**
 * `?` placeholders numbered `$1`, `$2`… as knex's PostgreSQL dialect numbers them; null for a
 * text with `??` or an escaped `\?`, which knex alone knows how to read.
 */
function positionalText(sql: string): { text: string; count: number } | null {
  if (sql.includes('??') || sql.includes('\\?')) return null;
  let count = 0;
  const text = sql.replace(/\?/g, () => `$${++count}`);
  return { text, count };
}

// Named columns, not `*`: a prepared `*` fails ("cached plan must not change result type") once a
// newer replica's migration adds a column.
const GET_BY_ID = `select ${IMAGE_COLUMNS.join(', ')} from ${TABLE} where id = ?`;

/** Page statements by text: a few dozen shapes (one per combination of filters), each made once. */
const statements = new Map<string, { name: string; positional: { text: string; count: number } | null }>();

export function rowToImage(row: Row): Image {
  const poolId = row.pool_id as string | null;
  const relPath = row.rel_path as string | null;
  return {
    id: row.id as string,
    name: row.name as string,
    description: row.description as string,
    labels: fromJson(row.labels),
    kind: row.kind as Image['kind'],
    format: (row.format as Image['format']) ?? null,
    os: fromJson(row.os),
    requirements: fromJson(row.requirements),
    catalogId: (row.catalog_id as string | null) ?? null,
    phase: row.phase as Image['phase'],
    progress: fromJson(row.progress) ?? null,
    sizeBytes: toNullableNumber(row.size_bytes),
    virtualSizeBytes: toNullableNumber(row.virtual_size_bytes),
    checksum: fromJson(row.checksum) ?? null,
    error: fromJson(row.error) ?? null,
    location: poolId !== null && relPath !== null ? { poolId, relPath } : null,
    nodeId: (row.node_id as string | null) ?? null,
    fileModifiedAt: toNullableDate(row.file_modified_at),
    version: toNumber(row.version),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

type ImageColumns = Omit<Image, 'id' | 'version' | 'createdAt' | 'updatedAt'>;

function imageToColumns(image: Partial<ImageColumns>): Row {
  const row: Row = {};
  const set = (column: string, value: unknown) => {
    if (value !== undefined) row[column] = value;
  };
  set('name', image.name);
  set('description', image.description);
  set('labels', image.labels === undefined ? undefined : toJson(image.labels));
  set('kind', image.kind);
  set('format', image.format);
  set('os', image.os === undefined ? undefined : toJson(image.os));
  set('requirements', image.requirements === undefined ? undefined : toJson(image.requirements));
  set('catalog_id', image.catalogId);
  set('phase', image.phase);
  set('progress', image.progress === undefined ? undefined : toJson(image.progress));
  set('size_bytes', image.sizeBytes);
  set('virtual_size_bytes', image.virtualSizeBytes);
  set('checksum', image.checksum === undefined ? undefined : toJson(image.checksum));
  set('error', image.error === undefined ? undefined : toJson(image.error));
  if (image.location !== undefined) {
    row.pool_id = image.location?.poolId ?? null;
    row.rel_path = image.location?.relPath ?? null;
  }
  set('node_id', image.nodeId);
  set('file_modified_at', image.fileModifiedAt);
  return row;
}

function discoveredToRow(found: ValidDiscoveredImage): Row {
  return {
    id: imageIdForLocation(found.poolId, found.relPath),
    name: found.name,
    description: '',
    labels: toJson(found.labels),
    kind: found.kind,
    format: found.format,
    os: toJson(found.os),
    requirements: toJson({ minCpu: 1, minMemoryMiB: 0, minDiskGiB: 0, firmware: 'any' }),
    phase: 'ready',
    size_bytes: found.sizeBytes,
    pool_id: found.poolId,
    rel_path: found.relPath,
    node_id: found.nodeId,
    file_modified_at: found.fileModifiedAt,
  };
}

export class KnexImageRepository implements ImageRepository {
  constructor(private readonly knex: Knex) {}

  async create(input: NewImage): Promise<Image> {
    const image = validateNewImage(input);
    const id = image.id ?? newId();
    const [row] = await guarded(WHAT, () =>
      this.knex(TABLE)
        .insert({ id, ...imageToColumns(image) })
        .returning(IMAGE_COLUMNS),
    );
    return rowToImage(row as Row);
  }

  async get(id: string): Promise<Image | undefined> {
    // The hottest read: a fixed statement, prepared on each connection like a page's.
    const result = await guarded(WHAT, () => runStatement(this.knex, GET_BY_ID, [id]));
    const row = (result.rows as Row[])[0];
    return row ? rowToImage(row) : undefined;
  }

  async require(id: string): Promise<Image> {
    const image = await this.get(id);
    if (!image) throw notFound(WHAT, id);
    return image;
  }

  async list(filter: ImageFilter = {}): Promise<Image[]> {
    const query = this.filtered(filter)
      .select(IMAGE_COLUMNS)
      .orderBy([{ column: 'created_at' }, { column: 'id' }]);
    const rows = await guarded(WHAT, () => applyPage(query, filter));
    return (rows as Row[]).map(rowToImage);
  }

  async count(filter: Omit<ImageFilter, 'limit' | 'offset'> = {}): Promise<number> {
    const row = await guarded(WHAT, () => this.filtered(filter).count({ count: '*' }).first());
    return toNumber((row as Row | undefined)?.count ?? 0);
  }

  async listFileStates(filter: Omit<ImageFilter, 'limit' | 'offset'> = {}): Promise<ImageFileState[]> {
    // Narrow columns, the mtime as a number (no JSON and no date to parse per row), and no sort.
    const query = this.filtered(filter)
      .whereNotNull('rel_path')
      .select(
        'id',
        'rel_path',
        'phase',
        'size_bytes',
        'version',
        this.knex.raw('(extract(epoch from file_modified_at) * 1000)::float8 as file_modified_ms'),
        this.knex.raw("error->>'code' as error_code"),
      );
    const rows = (await guarded(WHAT, () => query)) as Row[];
    return rows.map((row) => ({
      id: row.id as string,
      relPath: row.rel_path as string,
      phase: row.phase as Image['phase'],
      sizeBytes: toNullableNumber(row.size_bytes),
      fileModifiedMs: row.file_modified_ms === null ? null : Math.round(Number(row.file_modified_ms)),
      version: toNumber(row.version),
      errorCode: (row.error_code as string | null) ?? null,
    }));
  }

  async fileStatesStamp(filter: Omit<ImageFilter, 'limit' | 'offset'> = {}): Promise<string> {
    // Count, sum of versions and latest write: an insert moves the count and the latest write, an
    // update the versions, a delete the count. No per-row work: ~2 ms for 20,000 rows.
    const row = (await guarded(WHAT, () =>
      this.filtered(filter)
        .select(
          this.knex.raw('count(*)::text as count'),
          this.knex.raw('coalesce(sum(version), 0)::text as versions'),
          this.knex.raw('coalesce((extract(epoch from max(updated_at)) * 1000000)::bigint, 0)::text as latest'),
        )
        .first(),
    )) as Row | undefined;
    return `${row?.count ?? 0}:${row?.versions ?? 0}:${row?.latest ?? 0}`;
  }

  async getByLocation(location: { poolId: string; relPath: string }): Promise<Image | undefined> {
    assertRelPath(location.relPath);
    const row = await guarded(WHAT, () =>
      this.knex(TABLE).where({ pool_id: location.poolId, rel_path: location.relPath }).first(IMAGE_COLUMNS),
    );
    return row ? rowToImage(row) : undefined;
  }

  async findByCatalogIds(catalogIds: readonly string[], options: { poolId?: string } = {}): Promise<Image[]> {
    if (catalogIds.length === 0) return [];
    const query = this.knex(TABLE).whereIn('catalog_id', [...catalogIds]);
    if (options.poolId !== undefined) query.where('pool_id', options.poolId);
    const rows = await guarded(WHAT, () =>
      query.select(IMAGE_COLUMNS).orderBy([{ column: 'created_at' }, { column: 'id' }]),
    );
    return (rows as Row[]).map(rowToImage);
  }

  async upsertByLocation(found: readonly DiscoveredImage[]): Promise<UpsertResult> {
    // Validate everything first: one bad entry refuses the batch before anything is written.
    const byLocation = new Map<string, ValidDiscoveredImage>();
    for (const item of found) {
      const valid = validateDiscoveredImage(item);
      byLocation.set(`${valid.poolId}\0${valid.relPath}`, valid);
    }
    // In (pool, kind) order, as the counters of migration 0012 are locked (byte order): each chunk
    // adds to the counters of its pools and kinds and holds them to the end of the transaction, so
    // two scans of one pool take those locks in one order and never deadlock.
    const lockOrder = (found: ValidDiscoveredImage) => `${found.poolId}\0${found.kind}`;
    const rows = [...byLocation.values()]
      .sort((a, b) => (lockOrder(a) < lockOrder(b) ? -1 : lockOrder(a) > lockOrder(b) ? 1 : 0))
      .map(discoveredToRow);
    const result: UpsertResult = { inserted: 0, updated: 0, untouched: 0 };
    await guarded(WHAT, () =>
      this.knex.transaction(async (trx) => {
        for (let start = 0; start < rows.length; start += UPSERT_CHUNK) {
          const chunk = rows.slice(start, start + UPSERT_CHUNK);
          // A known location is refreshed only when it is ready or missing (never a row that is
          // downloading or being deleted) and only when something changed.
          const written = (await trx(TABLE)
            .insert(chunk)
            .onConflict(['pool_id', 'rel_path'])
            .merge({
              size_bytes: trx.raw('excluded.size_bytes'),
              file_modified_at: trx.raw('excluded.file_modified_at'),
              node_id: trx.raw(`coalesce(excluded.node_id, ${TABLE}.node_id)`),
              // A changed file was inspected again: take what the scan learned, keep what it did not.
              format: trx.raw(`coalesce(excluded.format, ${TABLE}.format)`),
              os: trx.raw(`case when excluded.os->>'family' <> 'unknown' then excluded.os else ${TABLE}.os end`),
              labels: trx.raw(`${TABLE}.labels || excluded.labels`),
              // A checksum describes the bytes it was read from: a file of another size is other
              // bytes (swapped by hand, say), and keeps no checksum until one is read of it again.
              checksum: trx.raw(`case when ${TABLE}.size_bytes = excluded.size_bytes then ${TABLE}.checksum end`),
              phase: 'ready',
              error: null,
              version: trx.raw(`${TABLE}.version + 1`),
              updated_at: trx.fn.now(),
            })
            .where(`${TABLE}.phase`, 'in', ['ready', 'missing'])
            .andWhere((q) =>
              q
                .where(`${TABLE}.phase`, 'missing')
                .orWhereRaw(`${TABLE}.size_bytes is distinct from excluded.size_bytes`)
                .orWhereRaw(`${TABLE}.file_modified_at is distinct from excluded.file_modified_at`),
            )
            .returning(trx.raw('(xmax = 0) as inserted'))) as { inserted: boolean }[];
          const inserted = written.filter((w) => w.inserted).length;
          result.inserted += inserted;
          result.updated += written.length - inserted;
          result.untouched += chunk.length - written.length;
        }
      }),
    );
    // New index entries of a batch wait in the search index's pending list until a vacuum; a
    // search meanwhile reads that list row by row (and the planner gives up on the index). One
    // bulk merge now (~40 ms for 10,000 rows) keeps searches fast right after a scan.
    if (result.inserted + result.updated > 0) {
      await guarded(WHAT, () => this.knex.raw(`select gin_clean_pending_list('${IMAGE_SEARCH_INDEX}'::regclass)`));
    }
    return result;
  }

  async page(query: ImagePageQuery): Promise<ImagePage> {
    const { after, limit, offset, ...filter } = query;
    const text = filter.text?.trim();
    const afterCursor = (builder: Knex.QueryBuilder) => {
      if (after === undefined) return;
      const [micros, id] = decodeListCursor(after);
      // Keyset: the row after the cursor's, in list order, found through images_created_idx.
      builder.whereRaw(`(created_at, id) > (timestamptz 'epoch' + ?::bigint * interval '1 microsecond', ?)`, [
        micros,
        id,
      ]);
    };
    const pageOf = (builder: Knex.QueryBuilder) => {
      afterCursor(builder);
      builder.orderBy([{ column: 'created_at' }, { column: 'id' }]);
      applyPage(builder, { ...(limit !== undefined ? { limit } : {}), ...(offset !== undefined ? { offset } : {}) });
      return builder.toSQL();
    };
    // Each row's exact position in list order (microseconds since the epoch), for the cursor.
    const position = (alias: string) => `(extract(epoch from ${alias}created_at) * 1000000)::bigint::text as position`;
    let rows: Row[];
    let total: number;
    if (text) {
      // A search: the page and the total as two statements planned per call (see runStatement),
      // run at once on two pooled connections. Each is a scan of its own, and on two cores the
      // search takes as long as the longer one, not both (bench/repository: one statement that
      // counted and paged the same materialized matches took 1.68 ms against 1.31 for a label
      // ~7% of 10,000 images hold, 6.5-10.7 ms against 3.3 for a word all of them hold).
      // Outside a transaction the two read the table a moment apart: under concurrent writes
      // the total may differ from the page by those writes.
      const page = pageOf(this.filtered(filter).select(...IMAGE_COLUMNS, this.knex.raw(position(''))));
      const count = this.filtered(filter).count('*').toSQL();
      const [pageResult, countResult] = await guarded(WHAT, () =>
        Promise.all([
          runStatement(this.knex, page.sql, page.bindings, 'per-call'),
          runStatement(this.knex, count.sql, count.bindings, 'per-call'),
        ]),
      );
      rows = pageResult.rows;
      total = toNumber(countResult.rows[0]?.count ?? 0);
    } else {
      const page = pageOf(this.filtered(filter).select(...IMAGE_COLUMNS));
      const count = this.filtered(filter).count('*').toSQL();
      // One statement: the page, each row's position, and the total. The left join keeps one row
      // (the total) when the page is empty.
      const result = await guarded(WHAT, () =>
        runStatement(
          this.knex,
          `with page as (${page.sql})
          select ${IMAGE_COLUMNS.map((column) => `i.${column}`).join(', ')}, ${position('i.')}, total.n as total
          from (${count.sql}) as total (n) left join page as i on true
          order by i.created_at, i.id`,
          [...page.bindings, ...count.bindings],
        ),
      );
      rows = result.rows.filter((row) => row.id !== null);
      total = toNumber(result.rows[0]?.total ?? 0);
    }
    const last = rows.at(-1);
    const full = limit !== undefined && rows.length === limit;
    return {
      images: rows.map(rowToImage),
      total,
      nextCursor: full && last ? encodeListCursor(last.position as string, last.id as string) : null,
    };
  }

  async listRankedForNode(query: RankedImagesQuery): Promise<RankedImages> {
    const offered = [...query.catalogIds];
    const text = query.text?.trim();
    // Conditions every row of the view meets (in the node's pools, not being deleted, the
    // filters), with their bindings in order. `pools` is the statement's one-row CTE of the
    // node's pool ids: all, mounted (active with a mount path) and not mounted.
    const common: [string, Knex.RawBinding[]][] = [
      ['pool_id = any((select all_ids from pools)::text[])', []],
      ["phase <> 'deleting'", []],
    ];
    if (query.kind) common.push(['kind = ?', [query.kind]]);
    const conjunction = (all: [string, Knex.RawBinding[]][]) => ({
      sql: all.map(([sql]) => sql).join(' and '),
      bindings: all.flatMap(([, b]) => b),
    });
    // A search reads the trigram index once, into `matches` (the view's rows that match, with the
    // columns the ranking reads); the streams, the total and the catalog rows then read those
    // instead of each walking images and testing the text on every row.
    const matches = text ? conjunction([...common, [IMAGE_SEARCH_CONDITION, [likePattern(text)]]]) : undefined;
    const source = matches ? 'matches' : 'images';
    const where = (extra: [string, Knex.RawBinding[]][]) => conjunction(matches ? extra : [...common, ...extra]);
    const notOffered: [string, Knex.RawBinding[]] = ['(catalog_id is null or catalog_id <> all(?::text[]))', [offered]];
    const onThisNode: [string, Knex.RawBinding[]] = ['(node_id is null or node_id = ?)', [query.nodeId]];
    // The view's ranks (see ImageRepository.listRankedForNode), each a stream in (name, id) order
    // cut at the deepest row this page can need, so the database reads a page's worth of rows
    // instead of ranking every row: ready rows walk images_phase_name_idx and stop; rows in the
    // other phases (downloading, missing, failed: few) come through images_phase_idx and are
    // sorted. A stream over an empty set of pools is skipped before it starts (a one-time filter
    // on the pools row), not walked to its end.
    const streams: { rank: string; conditions: [string, Knex.RawBinding[]][] }[] = [
      {
        rank: '0',
        conditions: [
          ['cardinality((select mounted from pools)) > 0', []],
          ["phase = 'ready'", []],
          ['pool_id = any((select mounted from pools)::text[])', []],
          onThisNode,
        ],
      },
      {
        rank: "case when phase = 'error' then 3 when phase = 'missing' then 2 else 1 end",
        conditions: [["phase in ('pending', 'downloading', 'verifying', 'missing', 'error')", []]],
      },
      {
        rank: '2',
        conditions: [
          ["phase = 'ready'", []],
          ['node_id is not null and node_id <> ?', [query.nodeId]],
        ],
      },
      {
        rank: '2',
        conditions: [
          ['cardinality((select unmounted from pools)) > 0', []],
          ["phase = 'ready'", []],
          ['pool_id = any((select unmounted from pools)::text[])', []],
          onThisNode,
        ],
      },
    ];
    // The cut of the first pages is written into the text, rounded up to a power of two (a few
    // shapes per filter): with a bound it can see, PostgreSQL plans the prepared statement once
    // per connection (a generic plan) instead of on every call, planning taking longer than
    // running it. A bound given as a parameter makes it guess a tenth of the table and plan each
    // call, which deep pages (rare, and reading thousands of rows anyway) still do.
    const needed = query.limit + query.offset;
    const depth = needed <= MAX_WRITTEN_DEPTH ? 2 ** Math.ceil(Math.log2(Math.max(64, needed))) : null;
    const parts: string[] = [];
    const bindings: Knex.RawBinding[] = [];
    for (const stream of streams) {
      const { sql, bindings: b } = where([notOffered, ...stream.conditions]);
      parts.push(
        `(select id, name, ${stream.rank} as rank from ${source} where ${sql} order by rank, name, id limit ${depth ?? '?'})`,
      );
      bindings.push(...b, ...(depth === null ? [needed] : []));
    }
    // The rows of one offered catalog entry (few: the catalog index finds them): every one ready
    // on this node (in two pools, or copied: each is a choice), else only the best-ranked — a
    // failed or pending second attempt does not stand beside a ready one.
    const offeredRows = where([['catalog_id = any(?::text[])', [offered]]]);
    const rankCase = `case
        when phase in ('pending', 'downloading', 'verifying') then 1
        when phase = 'error' then 3
        when phase = 'missing' then 2
        when node_id is not null and node_id <> ? then 2
        when pool_id = any((select mounted from pools)::text[]) then 0
        else 2
      end`;
    const offeredChoices = `select id, name, rank from (
          select id, name, rank, row_number() over (partition by catalog_id order by rank, id) as nth
          from (select id, name, catalog_id, ${rankCase} as rank from ${source} where ${offeredRows.sql}) as entry_rows
        ) as ranked_rows where rank = 0 or nth = 1`;
    if (offered.length > 0) parts.push('(select id, name, rank from offered_choices)');
    // The total: rows of no offered entry, plus the offered entries' choices. Rows made
    // from no catalog (nearly all of them) are summed from the counters of migration 0012, a few
    // rows per pool, or counted among the matches of a search.
    const noCatalog = matches
      ? { sql: '(select count(*) from matches where catalog_id is null)', bindings: [] }
      : {
          sql: `(select coalesce(sum(n), 0)::bigint from image_counts
            where pool_key = any((select all_ids from pools)::text[]) and phase <> 'deleting' and not from_catalog${query.kind ? ' and kind = ?' : ''})`,
          bindings: query.kind ? [query.kind] : [],
        };
    const otherCatalogRows = where([['catalog_id is not null', []], notOffered]);
    const result = await guarded(WHAT, () =>
      runStatement(
        this.knex,
        `with node_pools as materialized (
          select p.id, p.name, s.status, s.mount_path, s.last_error,
            coalesce(s.status = 'active' and s.mount_path is not null, false) as mounted
          from storage_pools p
          left join pool_node_states s on s.pool_id = p.id and s.node_id = ?
          where p.node_ids @> jsonb_build_array(?::text)
        ),
        pools as (
          select coalesce(array_agg(id), '{}') as all_ids,
            coalesce(array_agg(id) filter (where mounted), '{}') as mounted,
            coalesce(array_agg(id) filter (where not mounted), '{}') as unmounted
          from node_pools
        ),${
          matches
            ? `
        matches as materialized (select id, name, phase, pool_id, node_id, catalog_id from images where ${matches.sql}),`
            : ''
        }
        offered_choices as materialized (${offeredChoices}),
        ranked as (${parts.join(' union all ')}),
        page as (select id, name, rank from ranked order by rank, name, id limit ? offset ?),
        totals as (
          select
            exists (select 1 from nodes where id = ?) as node_found,
            ${noCatalog.sql}
            + (select count(*) from ${source} where ${otherCatalogRows.sql})
            + (select count(*) from offered_choices) as total,
            (select coalesce(array_agg(distinct catalog_id), '{}') from ${source} where ${offeredRows.sql}) as with_rows
        )
        select ${IMAGE_COLUMNS.map((column) => `i.${column}`).join(', ')},
          page.rank, totals.node_found, totals.total, totals.with_rows,
          np.name as pool_name, np.status as pool_status, np.mount_path as pool_mount_path, np.last_error as pool_last_error
        from totals left join page on true
        left join lateral (select ${IMAGE_COLUMNS.join(', ')} from images where id = page.id limit 1) as i on true
        left join node_pools np on np.id = i.pool_id
        order by page.rank, page.name, page.id`,
        [
          query.nodeId,
          query.nodeId,
          ...(matches?.bindings ?? []),
          query.nodeId,
          ...offeredRows.bindings,
          ...bindings,
          query.limit,
          query.offset,
          query.nodeId,
          ...noCatalog.bindings,
          ...otherCatalogRows.bindings,
          ...offeredRows.bindings,
        ],
      ),
    );
    const rows = result.rows as Row[];
    const first = rows[0];
    return {
      nodeFound: first?.node_found === true,
      images: rows
        .filter((row) => row.id !== null)
        .map((row) => ({
          image: rowToImage(row),
          rank: toNumber(row.rank) as 0 | 1 | 2 | 3,
          pool:
            row.pool_name === null
              ? null
              : {
                  name: row.pool_name as string,
                  state:
                    row.pool_status === null
                      ? null
                      : {
                          status: row.pool_status as PoolNodeState['status'],
                          mountPath: (row.pool_mount_path as string | null) ?? null,
                          lastError: (row.pool_last_error as string | null) ?? null,
                        },
                },
        })),
      total: toNumber(first?.total ?? 0),
      catalogIdsWithRows: (first?.with_rows as string[] | undefined) ?? [],
    };
  }

  async update(id: string, patch: ImagePatch, options: ImageUpdateOptions = {}): Promise<Image> {
    const valid = validateImagePatch(patch);
    const { whilePhase, via } = options;
    const row = await updateVersioned(this.knex, {
      table: TABLE,
      id,
      what: WHAT,
      expectedVersion: options.expectedVersion,
      columns: IMAGE_COLUMNS,
      build: (current) => {
        // Read under the row's lock: no writer moves it out of these phases before this write.
        if (whilePhase && !whilePhase.includes(current.phase as ImagePhase)) {
          throw new QuantixError(
            ErrorCode.VERSION_CONFLICT,
            `${WHAT} ${id} is ${String(current.phase)} now, no longer ${whilePhase.join(' or ')}; read it again`,
            { details: { id, phase: current.phase, whilePhase } },
          );
        }
        if (valid.phase !== undefined) {
          if (via !== undefined) assertImageTransition(current.phase as Image['phase'], via, id);
          assertImageTransition(via ?? (current.phase as Image['phase']), valid.phase, id);
        }
        return imageToColumns(valid);
      },
    });
    return rowToImage(row);
  }

  async delete(id: string, options: UpdateOptions = {}): Promise<void> {
    await deleteVersioned(this.knex, { table: TABLE, id, what: WHAT, expectedVersion: options.expectedVersion });
  }

  private filtered(filter: Omit<ImageFilter, 'limit' | 'offset'>): Knex.QueryBuilder {
    const query = this.knex(TABLE);
    if (filter.kind !== undefined) query.where('kind', filter.kind);
    if (filter.phase !== undefined) {
      if (typeof filter.phase === 'string') query.where('phase', filter.phase);
      else query.whereIn('phase', [...filter.phase]);
    }
    if (filter.poolId !== undefined) {
      if (typeof filter.poolId === 'string') query.where('pool_id', filter.poolId);
      else query.whereIn('pool_id', [...filter.poolId]);
    }
    if (filter.nodeId !== undefined) query.where('node_id', filter.nodeId);
    if (filter.catalogId !== undefined) query.where('catalog_id', filter.catalogId);
    if (filter.labels !== undefined && Object.keys(filter.labels).length > 0) {
      query.whereRaw('labels @> ?::jsonb', [JSON.stringify(filter.labels)]);
    }
    if (filter.text !== undefined && filter.text.trim() !== '') {
      query.whereRaw(IMAGE_SEARCH_CONDITION, [likePattern(filter.text.trim())]);
    }
    return query;
  }
}
