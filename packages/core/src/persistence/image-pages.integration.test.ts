/**
 * The image listings at size: 10,000 images in the pools of one node, on PostgreSQL and PGlite.
 * - every page statement (the list and the VM-creation view, with and without the filters they
 *   support) is planned without a sequential scan over `images` (EXPLAIN on PostgreSQL);
 * - the keyset cursor walks the list like offset paging does, and refuses a cursor it did not make;
 * - the same searches give the same images on PGlite and PostgreSQL (one trigram index on both);
 * - the view's first pages are planned once per connection (a generic plan), not on every call;
 *   a search of the list is planned per call with its words, so the plan fits how many rows match;
 * - the view's total (summed from the counters of migration 0012) equals the entries its pages
 *   hold, after inserts, upserts, updates, deletes and a rolled-back write, on both databases.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImagePageQuery, RankedImagesQuery, Repositories } from '../contracts/repositories.js';
import { ErrorCode } from '../errors.js';
import { type OpenTestDatabase, openTestDatabase } from '../testing/databases.js';
import { errorCodeOf } from '../testing/errors.js';
import { openDatabase } from './database.js';
import { IMAGE_SEARCH_INDEX } from './repositories/image-search.js';
import { createRepositories } from './repositories/index.js';

const IMAGES = 10_000;
const NODE = 'node-1';
const POOLS = ['pool-a', 'pool-b', 'pool-c', 'pool-d'];
const DISTRIBUTIONS = ['ubuntu', 'debian', 'fedora', 'alpine', 'rocky'];

/** The same 10,000 images, in several phases, on a node with two pools mounted and two not. */
async function seed(db: OpenTestDatabase): Promise<void> {
  const repos = db.repositories;
  await repos.nodes.create({ id: NODE, hostname: NODE });
  await repos.nodes.create({ id: 'node-2', hostname: 'node-2' });
  for (const [i, id] of POOLS.entries()) {
    await repos.pools.create({ id, name: id, type: 'local', contentTypes: ['images', 'iso'], nodeIds: [NODE] });
    await repos.pools.setNodeState({
      poolId: id,
      nodeId: NODE,
      status: i < 2 ? 'active' : 'inactive',
      mountPath: `/srv/${id}`,
    });
  }
  await repos.images.upsertByLocation(
    Array.from({ length: IMAGES }, (_, i) => ({
      poolId: POOLS[i % POOLS.length] as string,
      relPath: `${i % 3 === 0 ? 'iso' : 'cloud'}/${DISTRIBUTIONS[i % DISTRIBUTIONS.length]}-${i}.${i % 3 === 0 ? 'iso' : 'qcow2'}`,
      kind: i % 3 === 0 ? ('iso' as const) : ('cloud' as const),
      ...(i % 3 === 0 ? {} : { format: 'qcow2' as const }),
      sizeBytes: 1e9 + i,
      ...(i % 7 === 0 ? { labels: { channel: i % 2 === 0 ? 'stable' : 'edge-nightly' } } : {}),
      ...(i % 500 === 1 ? { nodeId: 'node-2' } : {}),
    })),
  );
  const knex = db.database.knex;
  // Rows in every phase the view ranks, picked by name so both databases pick the same ones.
  await knex.raw(`update images set phase = 'downloading' where name like 'fedora-1%' and name like '%7.qcow2'`);
  await knex.raw(`update images set phase = 'missing' where name like 'alpine-2%' and name like '%3.iso'`);
  await knex.raw(
    `update images set phase = 'error', error = '{"code":"X","message":"x","retryable":true}' where name like 'rocky-3%' and name like '%9.qcow2'`,
  );
  await knex.raw('update images set catalog_id = ? where name = ?', ['ubuntu-24.04', 'ubuntu-5.qcow2']);
  await knex.raw('update images set catalog_id = ? where name = ?', ['ubuntu-24.04', 'ubuntu-10.iso']);
  await knex.raw('update images set catalog_id = ? where name = ?', ['debian-12', 'debian-11.qcow2']);
  // As autovacuum leaves the table soon after a scan ingests it (PostgreSQL vacuums after 1,000
  // inserted rows): statistics, and a visibility map so totals are counted from indexes alone.
  await knex.raw('vacuum analyze images');
}

const LIST_QUERIES: ImagePageQuery[] = [
  { limit: 50 },
  { limit: 50, offset: 200 },
  { limit: 50, kind: 'iso' },
  { limit: 50, phase: 'ready', poolId: 'pool-b' },
  { limit: 50, phase: ['error', 'missing'] },
  { limit: 50, nodeId: 'node-2' },
  { limit: 50, catalogId: 'ubuntu-24.04' },
  { limit: 50, labels: { channel: 'edge-nightly' } },
  { limit: 50, text: 'fedora-12' },
  { limit: 50, text: 'NIGHTLY', kind: 'cloud' },
];

const VIEW_QUERIES: RankedImagesQuery[] = [
  { nodeId: NODE, catalogIds: [], limit: 50, offset: 0 },
  { nodeId: NODE, catalogIds: ['ubuntu-24.04', 'debian-12'], limit: 50, offset: 0 },
  { nodeId: NODE, catalogIds: ['ubuntu-24.04'], limit: 50, offset: 5000 },
  { nodeId: NODE, catalogIds: [], kind: 'iso', limit: 50, offset: 0 },
  { nodeId: NODE, catalogIds: ['debian-12'], text: 'debian-11', limit: 50, offset: 0 },
  { nodeId: NODE, catalogIds: [], text: 'stable', kind: 'cloud', limit: 50, offset: 0 },
  { nodeId: 'node-2', catalogIds: [], limit: 50, offset: 0 },
];

describe('image pages at 10,000 images', () => {
  let postgres: OpenTestDatabase;
  let pglite: OpenTestDatabase;

  beforeAll(async () => {
    [postgres, pglite] = await Promise.all([openTestDatabase('pg'), openTestDatabase('pglite')]);
    await Promise.all([seed(postgres), seed(pglite)]);
  }, 240_000);
  afterAll(async () => {
    await postgres?.close();
    await pglite?.close();
  });

  /** The statements a call sends, as PostgreSQL receives them. */
  async function statementsOf(call: (repos: Repositories) => Promise<unknown>) {
    const sent: { sql: string; bindings: unknown[] }[] = [];
    const listener = (query: { sql: string; bindings: unknown[] }) => sent.push(query);
    postgres.database.knex.on('query', listener);
    try {
      await call(postgres.repositories);
    } finally {
      postgres.database.knex.off('query', listener);
    }
    return sent;
  }

  it('plans every page of the list and of the view without a sequential scan over images', async () => {
    const client = new pg.Client({
      connectionString: (postgres.config as { connectionString: string }).connectionString,
    });
    await client.connect();
    try {
      // [what, call, statements it sends]: a page is one statement; a search of the list two, its
      // page and its total, sent at once.
      type Call = [string, (repos: Repositories) => Promise<unknown>, number];
      const calls: Call[] = [
        ...LIST_QUERIES.map((q): Call => [`list ${JSON.stringify(q)}`, (r) => r.images.page(q), q.text ? 2 : 1]),
        ...VIEW_QUERIES.map((q): Call => [`view ${JSON.stringify(q)}`, (r) => r.images.listRankedForNode(q), 1]),
      ];
      const first = await postgres.repositories.images.page({ limit: 50 });
      calls.push([
        'list after a cursor',
        (r) => r.images.page({ limit: 50, after: first.nextCursor as string, kind: 'cloud' }),
        1,
      ]);
      const scans: string[] = [];
      for (const [what, call, count] of calls) {
        const statements = await statementsOf(call);
        expect(statements, what).toHaveLength(count);
        for (const { sql, bindings } of statements) {
          const plan = (await client.query(`explain ${sql}`, bindings)).rows.map((row) => row['QUERY PLAN']).join('\n');
          if (/Seq Scan on images\b/.test(plan)) scans.push(`${what}:\n${plan}`);
        }
      }
      expect(scans).toEqual([]);
    } finally {
      await client.end();
    }
  }, 120_000);

  it('plans the first pages of the view once per connection, not on every call', async () => {
    // Planning the view costs more than running it; a statement PostgreSQL keeps a generic plan
    // for is planned once per connection. Each query runs prepared, as the repository sends it.
    const client = new pg.Client({
      connectionString: (postgres.config as { connectionString: string }).connectionString,
    });
    await client.connect();
    try {
      const firstPages = VIEW_QUERIES.filter((q) => !q.text && q.offset + q.limit <= 1000);
      for (const [index, query] of firstPages.entries()) {
        const [statement] = await statementsOf((r) => r.images.listRankedForNode(query));
        for (let i = 0; i < 10; i++) {
          await client.query({ name: `view_${index}`, text: statement?.sql as string, values: statement?.bindings });
        }
        const { rows } = await client.query('select generic_plans from pg_prepared_statements where name = $1', [
          `view_${index}`,
        ]);
        expect(Number(rows[0]?.generic_plans), JSON.stringify(query)).toBeGreaterThan(0);
      }
    } finally {
      await client.end();
    }
  });

  it('plans a search of the list per call, as many rows as its words match, and the view once', async () => {
    // One pooled connection, so the statements it keeps prepared are the ones the repository sent.
    const database = await openDatabase({
      client: 'pg',
      connectionString: (postgres.config as { connectionString: string }).connectionString,
      pool: { min: 1, max: 1 },
    });
    const client = new pg.Client({
      connectionString: (postgres.config as { connectionString: string }).connectionString,
    });
    await client.connect();
    try {
      const { images } = createRepositories(database.knex);
      const texts = ['fedora-12', 'NIGHTLY', 'ubuntu', 'fe', 'no such words', 'debian-11', 'edge', 'qcow2'];
      for (const text of [...texts, ...texts]) {
        const expected = await postgres.repositories.images.page({ text, limit: 20 });
        expect(await images.page({ text, limit: 20 }), text).toEqual(expected);
        await images.listRankedForNode({ nodeId: NODE, catalogIds: [], text, limit: 20, offset: 0 });
      }
      const { rows } = await database.knex.raw(
        `select statement, generic_plans, custom_plans from pg_prepared_statements where statement like '%search_text like%'`,
      );
      // The view's search stays one prepared statement for every text, planned generically once
      // PostgreSQL has seen its custom plans cost no less; the list's search is not prepared.
      expect(rows).toHaveLength(1);
      expect(rows[0].statement).toContain('node_pools');
      expect(Number(rows[0].generic_plans) + Number(rows[0].custom_plans)).toBe(texts.length * 2);
      expect(Number(rows[0].generic_plans)).toBeGreaterThan(0);

      // Planned with its words: a page of a text two thirds of the images hold walks the list in
      // order until the page is full; a rare one reads the trigram index and sorts what it found.
      const planOf = async (text: string) => {
        const [page] = await statementsOf((r) => r.images.page({ text, limit: 50 }));
        return (await client.query(`explain ${page?.sql}`, page?.bindings)).rows
          .map((row) => row['QUERY PLAN'])
          .join('\n');
      };
      const common = await planOf('qcow2');
      expect(common).toContain('images_created_idx');
      expect(common).not.toMatch(/\bSort\b/);
      expect(await planOf('fedora-12')).toContain(IMAGE_SEARCH_INDEX);
    } finally {
      await client.end();
      await database.close();
    }
  });

  it.each([
    ['pg', () => postgres],
    ['pglite', () => pglite],
  ])('walks the list with the cursor exactly as offset paging does, on %s', async (_, db) => {
    const { images } = db().repositories;
    const filter = { kind: 'iso' as const, phase: 'ready' as const };
    const byOffset: string[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await images.page({ ...filter, limit: 1000, offset });
      byOffset.push(...page.images.map((image) => image.id));
      if (page.images.length < 1000) break;
    }
    const byCursor: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await images.page({ ...filter, limit: 1000, ...(after ? { after } : {}) });
      byCursor.push(...page.images.map((image) => image.id));
      expect(page.total).toBe(byOffset.length);
      after = page.nextCursor ?? undefined;
      pages++;
    } while (after);
    expect(byCursor).toEqual(byOffset);
    expect(new Set(byCursor).size).toBe(byCursor.length);
    expect(pages).toBe(Math.ceil(byOffset.length / 1000));
    for (const bad of [
      'nonsense',
      Buffer.from('["12","x","y"]').toString('base64url'),
      Buffer.from('[1,"x"]').toString('base64url'),
    ]) {
      expect(await errorCodeOf(images.page({ limit: 10, after: bad }))).toBe(ErrorCode.INVALID_INPUT);
    }
  });

  it('finds the same images on PGlite and PostgreSQL for every search', async () => {
    const searches = [
      'fedora-12',
      'FEDORA-12',
      'nightly',
      'stable',
      '.iso',
      'rocky-39',
      'no such image',
      'ubuntu-5.',
      '%',
      '_',
    ];
    for (const text of searches) {
      for (const query of [
        { limit: 1000, text },
        { limit: 100, text, kind: 'cloud' as const },
      ]) {
        const [onPostgres, onPglite] = await Promise.all([
          postgres.repositories.images.page(query),
          pglite.repositories.images.page(query),
        ]);
        const names = (page: typeof onPostgres) => page.images.map((image) => image.name);
        expect(names(onPglite), JSON.stringify(query)).toEqual(names(onPostgres));
        expect(onPglite.total).toBe(onPostgres.total);
      }
      const view = { nodeId: NODE, catalogIds: ['ubuntu-24.04', 'debian-12'], text, limit: 200, offset: 0 };
      const [viewPostgres, viewPglite] = await Promise.all([
        postgres.repositories.images.listRankedForNode(view),
        pglite.repositories.images.listRankedForNode(view),
      ]);
      const ranked = (page: typeof viewPostgres) => page.images.map(({ image, rank }) => `${rank} ${image.name}`);
      expect(ranked(viewPglite), text).toEqual(ranked(viewPostgres));
      expect(viewPglite.total).toBe(viewPostgres.total);
    }
    // Sanity: the searches do find what they look for.
    expect((await postgres.repositories.images.page({ limit: 1000, text: 'nightly' })).total).toBe(
      Array.from({ length: IMAGES }, (_, i) => i).filter((i) => i % 7 === 0 && i % 2 === 1).length,
    );
    expect((await postgres.repositories.images.page({ limit: 1000, text: 'FEDORA-12' })).images.length).toBeGreaterThan(
      0,
    );
  }, 120_000);

  it('answers a 10,000-image text search through the trigram index on PostgreSQL', async () => {
    const [statement] = await statementsOf((r) => r.images.page({ limit: 50, text: 'fedora-12' }));
    const client = new pg.Client({
      connectionString: (postgres.config as { connectionString: string }).connectionString,
    });
    await client.connect();
    try {
      const plan = (await client.query(`explain ${statement?.sql}`, statement?.bindings)).rows
        .map((row) => row['QUERY PLAN'])
        .join('\n');
      expect(plan).toContain(IMAGE_SEARCH_INDEX);
    } finally {
      await client.end();
    }
  });

  it('keeps answering from its prepared statements after another replica adds a column to images', async () => {
    const view = { nodeId: NODE, catalogIds: [], limit: 5, offset: 0 };
    const before = await postgres.repositories.images.page({ limit: 5 });
    const viewBefore = await postgres.repositories.images.listRankedForNode(view);
    // Executed again and again on each pooled connection, so PostgreSQL keeps them prepared.
    for (let i = 0; i < 30; i++) {
      await Promise.all([
        postgres.repositories.images.page({ limit: 5 }),
        postgres.repositories.images.listRankedForNode(view),
      ]);
    }
    await postgres.database.knex.raw('alter table images add column added_later text');
    try {
      for (let i = 0; i < 30; i++) {
        const [page, ranked] = await Promise.all([
          postgres.repositories.images.page({ limit: 5 }),
          postgres.repositories.images.listRankedForNode(view),
        ]);
        expect(page.images.map((image) => image.id)).toEqual(before.images.map((image) => image.id));
        expect(ranked.images.map(({ image }) => image.id)).toEqual(viewBefore.images.map(({ image }) => image.id));
      }
    } finally {
      await postgres.database.knex.raw('alter table images drop column added_later');
    }
  });

  // Last: it writes (the same writes on both databases, so they still agree afterwards).
  it.each([
    ['pg', () => postgres],
    ['pglite', () => pglite],
  ])(
    'gives the view a total equal to the entries its pages hold, through every kind of write, on %s',
    async (_, db) => {
      const { images } = db().repositories;
      const knex = db().database.knex;
      /** Every entry of the node's view, page by page, beside the total each page states. */
      async function walk(query: Omit<RankedImagesQuery, 'limit' | 'offset'>) {
        const keys: string[] = [];
        const totals = new Set<number>();
        for (let offset = 0; ; offset += 1000) {
          const page = await images.listRankedForNode({ ...query, limit: 1000, offset });
          keys.push(...page.images.map(({ image }) => image.id));
          totals.add(page.total);
          if (page.images.length < 1000) break;
        }
        return { entries: new Set(keys).size, totals: [...totals] };
      }
      const views = [
        { nodeId: NODE, catalogIds: ['ubuntu-24.04', 'debian-12'] },
        { nodeId: NODE, catalogIds: [], kind: 'iso' as const },
        { nodeId: 'node-2', catalogIds: [] },
        // A search's total is counted among its matches.
        { nodeId: NODE, catalogIds: ['ubuntu-24.04', 'debian-12'], text: 'ubuntu' },
        { nodeId: NODE, catalogIds: [], text: 'nightly', kind: 'cloud' as const },
      ];
      const expectTotalsMatchEntries = async (when: string) => {
        for (const view of views) {
          const { entries, totals } = await walk(view);
          expect(totals, `${when}: ${JSON.stringify(view)}`).toEqual([entries]);
        }
      };
      await expectTotalsMatchEntries('as seeded');
      const before = (await walk(views[0] as (typeof views)[0])).entries;

      // A scan: new files (insert) and changed ones (the upsert's update branch).
      await images.upsertByLocation([
        ...Array.from({ length: 30 }, (_, i) => ({
          poolId: 'pool-a',
          relPath: `later/new-${i}.iso`,
          kind: 'iso' as const,
          sizeBytes: 1000 + i,
        })),
        { poolId: 'pool-d', relPath: 'iso/ubuntu-15.iso', kind: 'iso' as const, sizeBytes: 1 },
      ]);
      // Being deleted, made from a catalog, moved to another pool, deleted: each by its own path.
      const [deleting, deleted, fromCatalog, moved] = (
        await knex.raw(`select id from images where pool_id = 'pool-a' and phase = 'ready' order by name limit 4`)
      ).rows.map((row: { id: string }) => row.id);
      await images.update(deleting, { phase: 'deleting' });
      await images.delete(deleted);
      await knex.raw('update images set catalog_id = ? where id = ?', ['ubuntu-24.04', fromCatalog]);
      await knex.raw(`update images set pool_id = 'pool-c' where id = ?`, [moved]);
      await knex.raw(`delete from images where rel_path like 'later/new-2%'`);
      // A write that is rolled back leaves the total as it was.
      await knex
        .transaction(async (trx) => {
          await trx.raw(`delete from images where pool_id = 'pool-d'`);
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      await expectTotalsMatchEntries('after the writes');
      // 30 new, 11 of them deleted again (new-2, new-20…29); one being deleted, one deleted. The one
      // now of an offered entry that already has rows is ready on this node: a choice of its own still.
      expect((await walk(views[0] as (typeof views)[0])).entries).toBe(before + 30 - 11 - 2);
    },
    120_000,
  );

  it('lets two scans of one pool write at once: both finish, and the counters match the rows', async () => {
    const { images } = postgres.repositories;
    const knex = postgres.database.knex;
    // More than one INSERT chunk each, the kinds in opposite orders: unsorted, each scan would hold
    // the counter of its first kind and wait for the other's.
    const scan = (prefix: string, kinds: ['iso' | 'cloud', 'iso' | 'cloud']) =>
      kinds.flatMap((kind) =>
        Array.from({ length: 1200 }, (_, i) => ({
          poolId: 'pool-c',
          relPath: `${prefix}/${kind}-${i}`,
          kind,
          sizeBytes: i,
        })),
      );
    const [first, second] = await Promise.all([
      images.upsertByLocation(scan('scan-1', ['iso', 'cloud'])),
      images.upsertByLocation(scan('scan-2', ['cloud', 'iso'])),
    ]);
    expect([first.inserted, second.inserted]).toEqual([2400, 2400]);
    const counted = await knex.raw(
      `select kind, sum(n)::int as n from image_counts where pool_key = 'pool-c' and phase = 'ready' and not from_catalog group by kind order by kind`,
    );
    const rows = await knex.raw(
      `select kind, count(*)::int as n from images where pool_id = 'pool-c' and phase = 'ready' and catalog_id is null group by kind order by kind`,
    );
    expect(counted.rows).toEqual(rows.rows);
  });
});
