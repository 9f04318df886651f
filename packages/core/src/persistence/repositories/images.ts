import type { Knex } from 'knex';
import type {
  ImageFileState,
  ImageFilter,
  ImageRepository,
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
  type NewImage,
  type ValidDiscoveredImage,
  validateDiscoveredImage,
  validateImagePatch,
  validateNewImage,
} from '../../domain/image.js';
import { assertRelPath } from '../../domain/paths.js';
import { fromJson, toDate, toJson, toNullableDate, toNullableNumber, toNumber } from '../rows.js';
import { applyPage, deleteVersioned, guarded, likePattern, notFound, type Row, updateVersioned } from './common.js';

const TABLE = 'images';
const WHAT = 'Image';
/** Rows per INSERT of a batch upsert: 14 parameters each stays well under PostgreSQL's 65,535. */
const UPSERT_CHUNK = 1000;

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
    requirements: toJson({ minCpu: 1, minMemoryMiB: 512, minDiskGiB: 0, firmware: 'any' }),
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
        .returning('*'),
    );
    return rowToImage(row as Row);
  }

  async get(id: string): Promise<Image | undefined> {
    // The hottest read: fixed SQL skips the query builder's per-call compile.
    const result = await guarded(WHAT, () => this.knex.raw(`select * from ${TABLE} where id = ?`, [id]));
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
      .select('*')
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

  async getByLocation(location: { poolId: string; relPath: string }): Promise<Image | undefined> {
    assertRelPath(location.relPath);
    const row = await guarded(WHAT, () =>
      this.knex(TABLE).where({ pool_id: location.poolId, rel_path: location.relPath }).first(),
    );
    return row ? rowToImage(row) : undefined;
  }

  async findByCatalogIds(catalogIds: readonly string[], options: { poolId?: string } = {}): Promise<Image[]> {
    if (catalogIds.length === 0) return [];
    const query = this.knex(TABLE).whereIn('catalog_id', [...catalogIds]);
    if (options.poolId !== undefined) query.where('pool_id', options.poolId);
    const rows = await guarded(WHAT, () => query.select('*').orderBy([{ column: 'created_at' }, { column: 'id' }]));
    return (rows as Row[]).map(rowToImage);
  }

  async upsertByLocation(found: readonly DiscoveredImage[]): Promise<UpsertResult> {
    // Validate everything first: one bad entry refuses the batch before anything is written.
    const byLocation = new Map<string, ValidDiscoveredImage>();
    for (const item of found) {
      const valid = validateDiscoveredImage(item);
      byLocation.set(`${valid.poolId}\0${valid.relPath}`, valid);
    }
    const rows = [...byLocation.values()].map(discoveredToRow);
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
    return result;
  }

  async listRankedForNode(query: RankedImagesQuery): Promise<RankedImages> {
    if (query.poolIds.length === 0) return { images: [], total: 0, catalogIdsWithRows: [] };
    const conditions = ['i.pool_id = any(?::text[])', "i.phase <> 'deleting'"];
    const filters: Knex.RawBinding[] = [[...query.poolIds]];
    if (query.kind) {
      conditions.push('i.kind = ?');
      filters.push(query.kind);
    }
    if (query.text?.trim()) {
      conditions.push(`(i.name ilike ? or i.os->>'distribution' ilike ?)`);
      const pattern = likePattern(query.text.trim());
      filters.push(pattern, pattern);
    }
    const where = conditions.join(' and ');
    // The rank mirrors the view's statuses (services/available-images.ts); `choice` collapses the
    // rows of one catalog entry so that only its best-ranked row counts. Ranking runs on narrow
    // rows; whole rows are read for the page only.
    const ranked = `
      with candidates as (
        select i.id, i.name, i.catalog_id, i.catalog_id = any(?::text[]) as offered,
          case
            when i.phase in ('pending', 'downloading', 'verifying') then 1
            when i.phase = 'error' then 3
            when i.phase = 'missing' then 2
            when i.node_id is not null and i.node_id <> ? then 2
            when s.status = 'active' and s.mount_path is not null then 0
            else 2
          end as rank
        from images i
        left join pool_node_states s on s.pool_id = i.pool_id and s.node_id = ?
        where ${where}
      ),
      ranked as (
        select id, name, rank from candidates where offered is not true
        union all
        (select distinct on (catalog_id) id, name, rank from candidates where offered order by catalog_id, rank, id)
      )`;
    const bindings: Knex.RawBinding[] = [[...query.catalogIds], query.nodeId, query.nodeId, ...filters];
    const [page, withRows] = await guarded(WHAT, () =>
      Promise.all([
        this.knex.raw(
          `${ranked},
          page as (select * from ranked order by rank, name, id limit ? offset ?)
          select i.*, page.rank, (select count(*) from ranked) as total
          from page join images i on i.id = page.id
          order by page.rank, page.name, page.id`,
          [...bindings, query.limit, query.offset],
        ),
        this.knex.raw(`select distinct i.catalog_id from images i where ${where} and i.catalog_id = any(?::text[])`, [
          ...filters,
          [...query.catalogIds],
        ]),
      ]),
    );
    const rows = page.rows as Row[];
    // A page past the end has no row to carry the total.
    const total =
      rows.length > 0
        ? toNumber(rows[0]?.total)
        : toNumber(
            (
              (await guarded(WHAT, () => this.knex.raw(`${ranked} select count(*) as total from ranked`, bindings)))
                .rows as Row[]
            )[0]?.total ?? 0,
          );
    return {
      images: rows.map((row) => ({ image: rowToImage(row), rank: toNumber(row.rank) as 0 | 1 | 2 | 3 })),
      total,
      catalogIdsWithRows: (withRows.rows as Row[]).map((row) => row.catalog_id as string),
    };
  }

  async update(id: string, patch: ImagePatch, options: UpdateOptions = {}): Promise<Image> {
    const valid = validateImagePatch(patch);
    const row = await updateVersioned(this.knex, {
      table: TABLE,
      id,
      what: WHAT,
      expectedVersion: options.expectedVersion,
      build: (current) => {
        if (valid.phase !== undefined) assertImageTransition(current.phase as Image['phase'], valid.phase, id);
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
      const pattern = likePattern(filter.text.trim());
      query.where((q) =>
        q
          .where('name', 'ilike', pattern)
          .orWhere('description', 'ilike', pattern)
          .orWhereRaw(`os->>'distribution' ilike ?`, [pattern]),
      );
    }
    return query;
  }
}
