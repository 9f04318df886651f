/**
 * bench/repository — the repository layer beside raw SQL through `pg`, on PostgreSQL, in one run.
 *   list-with-filter and get-by-id over 10,000 images: repository vs the same query in raw SQL
 *   (target ≤ 1.3×); text search over 10,000 images (names, OS, labels; issue 14 item 2):
 *   repository vs the raw trigram query, for a rare word (again on the index rebuilt), a label and
 *   a word every image holds (target ≤ 1.3× and < 2 ms); batch upsert of 10,000 discovered files
 *   (target ≤ 2 s); a single-use ticket (consoles, event streams) issued and spent through
 *   SingleUseTickets vs the same two statements in raw SQL (target ≤ 1.3×).
 * QUANTIX_BENCH_QUICK=1 runs a small version (CI runs it so the bench never rots).
 */
import { performance } from 'node:perf_hooks';
import { SingleUseTickets, tokenDigest } from '@quantix/control-plane';
import { createRepositories, type DiscoveredImage, openDatabase } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { IMAGE_SEARCH_INDEX } from '../packages/core/src/persistence/repositories/image-search.js';
import { rawPool } from './lib/raw-pool.js';
import { againstBound, benchResults } from './lib/results.js';
import { median } from './lib/stats.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const IMAGES = quick ? 1_000 : 10_000;
const ROUNDS = quick ? 50 : 500;
const POOLS = ['pool-a', 'pool-b', 'pool-c', 'pool-d'];
/** Issue 14: a search over 10,000 images under 2 ms. */
const SEARCH_TARGET_MS = 2;

/**
 * Milliseconds per call of `ours` and of `peer`: after a warm-up, batches of each alternate
 * (so drift on a busy machine hits both alike) and the median batch of each side counts.
 */
async function compare(
  rounds: number,
  ours: (i: number) => Promise<unknown>,
  peer: (i: number) => Promise<unknown>,
): Promise<[number, number]> {
  for (let i = 0; i < Math.max(100, rounds); i++) {
    await ours(i);
    await peer(i);
  }
  const samples: [number[], number[]] = [[], []];
  for (let batch = 0; batch < 7; batch++) {
    for (const [side, op] of [ours, peer].entries()) {
      const start = performance.now();
      for (let i = 0; i < rounds; i++) await op(i);
      samples[side]?.push((performance.now() - start) / rounds);
    }
  }
  return [median(samples[0]), median(samples[1])];
}

const results = benchResults('repository');

function line(
  name: string,
  ours: number,
  peer: number,
  target: number,
  details?: Record<string, string | number>,
): string {
  return results.add({
    name,
    unit: 'ms/op',
    better: 'lower',
    ours: { label: 'repository', value: ours },
    peer: { label: 'raw pg', value: peer },
    target: { ratio: target },
    details: { images: IMAGES, ...details },
  });
}

const testDb = await createPostgresTestDatabase();
const db = await openDatabase(testDb.config);
const raw = rawPool((testDb.config as { connectionString: string }).connectionString, 10);
try {
  const repos = createRepositories(db.knex);
  for (const id of POOLS) await repos.pools.create({ id, name: id, type: 'local' });

  const found: DiscoveredImage[] = Array.from({ length: IMAGES }, (_, i) => ({
    poolId: POOLS[i % POOLS.length] as string,
    relPath: `iso/${Math.floor(i / 100)}/disc-${i}.iso`,
    kind: i % 3 === 0 ? 'cloud' : 'iso',
    sizeBytes: 1_000_000 + i,
    ...(i % 7 === 0 ? { labels: { channel: i % 2 === 0 ? 'stable' : 'nightly' } } : {}),
    fileModifiedAt: new Date(1_700_000_000_000 + i * 1000),
  }));
  let start = performance.now();
  const inserted = await repos.images.upsertByLocation(found);
  const insertMs = performance.now() - start;
  start = performance.now();
  const refreshed = await repos.images.upsertByLocation(found.map((f) => ({ ...f, sizeBytes: f.sizeBytes + 1 })));
  const updateMs = performance.now() - start;
  start = performance.now();
  const unchanged = await repos.images.upsertByLocation(found.map((f) => ({ ...f, sizeBytes: f.sizeBytes + 1 })));
  const unchangedMs = performance.now() - start;
  await raw.query('vacuum analyze images'); // as autovacuum leaves it after an ingest

  // The peer reads what a row of the domain holds: every column but the stored search text.
  const columns = (
    await raw.query<{ column_name: string }>(
      "select column_name from information_schema.columns where table_name = 'images' and column_name <> 'search_text' order by ordinal_position",
    )
  ).rows
    .map((r) => r.column_name)
    .join(', ');
  const ids = (await raw.query<{ id: string }>('select id from images order by id')).rows.map((r) => r.id);
  const pick = (i: number) => ids[(i * 7919) % ids.length] as string;

  const [getRepo, getRaw] = await compare(
    ROUNDS,
    (i) => repos.images.get(pick(i)),
    (i) => raw.query(`select ${columns} from images where id = $1`, [pick(i)]),
  );

  const filter = { kind: 'iso' as const, phase: 'ready' as const, poolId: 'pool-b', limit: 50 };
  const [listRepo, listRaw] = await compare(
    ROUNDS,
    (i) => repos.images.list({ ...filter, offset: (i % 10) * 50 }),
    (i) =>
      raw.query(
        `select ${columns} from images where kind = $1 and phase = $2 and pool_id = $3 order by created_at, id limit 50 offset $4`,
        ['iso', 'ready', 'pool-b', (i % 10) * 50],
      ),
  );

  // Text search: the repository's page (its rows and its total, two statements sent at once) beside
  // the same two statements in raw SQL through the trigram index, on a pool of its own.
  const searchSql = `select ${columns} from images where search_text like lower($1) order by created_at, id limit 50`;
  const countSql = 'select count(*) from images where search_text like lower($1)';
  const search = (text: string) =>
    compare(
      ROUNDS,
      () => repos.images.page({ text, limit: 50 }),
      () => Promise.all([raw.query(searchSql, [`%${text}%`]), raw.query(countSql, [`%${text}%`])]),
    );
  // The issue's search (a name fragment, ~110 matches), a label matched by ~700 images, and a
  // word every image's name holds.
  const [textRepo, textRaw] = await search('disc-99');
  const [labelRepo, labelRaw] = await search('nightly');
  const [everyRepo, everyRaw] = await search('disc');
  const searchPlan = (await raw.query(`explain ${searchSql}`, ['%disc-99%'])).rows
    .map((r) => r['QUERY PLAN'])
    .join(' ');
  // The name fragment again on the index rebuilt. The searches above read it as the refresh of
  // every row and the vacuum left it; before migration 0019 gave image rows room on their pages,
  // GIN there took a trigram every image holds for a rare one and read it whole (bench/README,
  // "The search index's state"). An index as ingest builds it reads like a rebuilt one.
  await raw.query(`reindex index ${IMAGE_SEARCH_INDEX}`);
  const [rebuiltRepo, rebuiltRaw] = await search('disc-99');

  console.log(`bench/repository on PostgreSQL, ${IMAGES} images${quick ? ' (quick mode)' : ''}`);
  console.log(line('get by id', getRepo, getRaw, 1.3));
  console.log(line('list kind+phase+pool page', listRepo, listRaw, 1.3));
  console.log(
    line('text search (name fragment)', textRepo, textRaw, 1.3, {
      trigramIndex: searchPlan.includes(IMAGE_SEARCH_INDEX) ? 'used' : 'NOT USED',
    }),
  );
  console.log(line('text search, a label (~7% match)', labelRepo, labelRaw, 1.3));
  console.log(line('text search, every image matches', everyRepo, everyRaw, 1.3));
  console.log(line('text search (name fragment), index rebuilt', rebuiltRepo, rebuiltRaw, 1.3));
  // The issue's absolute bound, as a line of the table like the ratios (bench/README's table).
  console.log(
    results.add(
      againstBound({
        name: `text search (name fragment), vs the ${SEARCH_TARGET_MS} ms target`,
        unit: 'ms/op',
        better: 'lower',
        ours: { label: 'repository', value: textRepo },
        bound: { label: 'issue target', value: SEARCH_TARGET_MS },
        details: { images: IMAGES },
      }),
    ),
  );
  // Printed as well as kept in the details: a search that stopped using its index shows here.
  console.log(
    `text search 'disc-99' plan: trigram index ${searchPlan.includes(IMAGE_SEARCH_INDEX) ? 'used' : 'NOT USED'}`,
  );

  // A ticket as a browser's console or event stream uses it: issued on one replica, spent on any.
  const tickets = new SingleUseTickets<{ vmId: string }>({ knex: db.knex, purpose: 'console', ttlMs: 60_000 });
  const [ticketOurs, ticketRaw] = await compare(
    ROUNDS,
    async () => {
      const { ticket } = await tickets.issue({ vmId: 'vm-1' });
      if ((await tickets.redeem(ticket))?.vmId !== 'vm-1') throw new Error('ticket not redeemed');
    },
    async (i) => {
      const digest = tokenDigest(`raw-ticket-${i}-${performance.now()}`);
      // The same two statements (expired tickets swept by the insert), without the layer.
      await raw.query(
        `with swept as (delete from single_use_tickets where expires_at < now())
         insert into single_use_tickets (digest, purpose, grant_json, expires_at)
         values ($1, 'console', $2::jsonb, now() + interval '60 seconds') returning expires_at`,
        [digest, JSON.stringify({ vmId: 'vm-1' })],
      );
      await raw.query(
        'delete from single_use_tickets where digest = $1 returning purpose, grant_json, expires_at > now() as live',
        [digest],
      );
    },
  );
  console.log(
    results.add({
      name: 'ticket issued and spent',
      unit: 'ms/op',
      better: 'lower',
      ours: { label: 'SingleUseTickets', value: ticketOurs },
      peer: { label: 'raw pg, same statements', value: ticketRaw },
      target: { ratio: 1.3 },
    }),
  );

  const budget = 2000 * (IMAGES / 10_000);
  console.log(
    `batch upsert of ${IMAGES} discovered files: insert ${insertMs.toFixed(0)} ms (${inserted.inserted} new), ` +
      `refresh ${updateMs.toFixed(0)} ms (${refreshed.updated} changed), re-scan ${unchangedMs.toFixed(0)} ms (${unchanged.untouched} untouched); ` +
      `target ≤ ${budget.toFixed(0)} ms: ${Math.max(insertMs, updateMs) <= budget ? 'ok' : 'OVER TARGET'}`,
  );
  results.add(
    againstBound({
      name: `batch upsert of ${IMAGES} files`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'insert', value: insertMs },
      bound: { label: 'budget', value: budget },
      details: { refreshMs: Math.round(updateMs), rescanMs: Math.round(unchangedMs) },
    }),
  );
  if (inserted.inserted !== IMAGES || refreshed.updated !== IMAGES || unchanged.untouched !== IMAGES) {
    throw new Error('upsert counts are wrong');
  }
  await results.save();
} finally {
  await raw.end();
  await db.close();
  await testDb.dispose();
}
