/**
 * The timestamps PostgreSQL sends are read to the same Dates as `pg`'s own parser reads them, for
 * what the server prints in several time zones: fractions of 0–6 digits, offsets of whole hours
 * and of half hours, either side of UTC, and the forms the fast path leaves to `pg` (years before
 * 100 and after 9999, BC, infinity, an offset with seconds).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPostgresUrl } from '../testing/databases.js';
import { openDatabase } from './database.js';
import { parseIsoTimestamptz, pgTypesWithFastTimestamps } from './pg-types.js';

const ZONES = ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'America/Los_Angeles', 'Europe/Amsterdam'];

/** The same value as a Date, or the same failure to be one. */
const same = (value: unknown) => (value instanceof Date ? value.getTime() : value);

describe('timestamptz values read from PostgreSQL', () => {
  const client = new pg.Client({ connectionString: adminPostgresUrl() });
  const reference = pg.types.getTypeParser(1184, 'text');
  const fast = pgTypesWithFastTimestamps(pg.types.getTypeParser).getTypeParser(1184, 'text');

  beforeAll(() => client.connect());
  afterAll(() => client.end());

  it('are the Dates pg reads, in every time zone and every form the server prints', async () => {
    let fastPath = 0;
    let texts = 0;
    for (const zone of ZONES) {
      await client.query(`set time zone '${zone}'`);
      // Fractions of every length, across a DST change and a leap day, plus the odd forms.
      const { rows } = await client.query<{ text: string }>(
        `select t::text as text from (
           select timestamptz '2024-02-28 22:00:00+00' + n * interval '1 hour 7 minutes 3.1234567 seconds' as t
             from generate_series(0, 400) as n
           union all select timestamptz '2026-03-29 00:59:59.999999+00' + n * interval '1 microsecond'
             from generate_series(0, 3) as n
           union all select unnest(array[timestamptz '0050-06-01 12:00:00+00', timestamptz '0099-12-31 23:59:59.5+00',
             timestamptz '12000-01-01 00:00:00+00', timestamptz '0044-03-15 12:00:00+00 BC',
             timestamptz '1850-01-01 00:00:00+00', timestamptz '1970-01-01 00:00:00+00',
             timestamptz '1969-12-31 23:59:59.999+00', 'infinity'::timestamptz, '-infinity'::timestamptz])
         ) as values`,
      );
      for (const { text } of rows) {
        texts++;
        if (parseIsoTimestamptz(text) !== undefined) fastPath++;
        expect(same(fast(text)), `${zone}: ${text}`).toEqual(same(reference(text)));
      }
    }
    // Nearly all of them took the fast path; the odd forms did not.
    expect(fastPath).toBeGreaterThan(texts * 0.9);
    expect(parseIsoTimestamptz('0050-06-01 12:00:00+00')).toBeUndefined();
    expect(parseIsoTimestamptz('12000-01-01 00:00:00+00')).toBeUndefined();
    expect(parseIsoTimestamptz('0044-03-15 12:00:00+00 BC')).toBeUndefined();
    expect(parseIsoTimestamptz('1850-01-01 00:19:32+00:19:32')).toBeUndefined();
    expect(parseIsoTimestamptz('infinity')).toBeUndefined();
  });

  it('are what a database opened by Quantix reads', async () => {
    const database = await openDatabase({ client: 'pg', connectionString: adminPostgresUrl() }, { migrate: false });
    try {
      const sql = `select timestamptz '2026-12-05 04:11:12.123456+05:30' as t`;
      const [ours] = (await database.knex.raw(sql)).rows;
      const [theirs] = (await client.query(sql)).rows;
      expect(ours.t).toBeInstanceOf(Date);
      expect(ours.t.toISOString()).toBe('2026-12-04T22:41:12.123Z');
      expect(ours.t.getTime()).toBe(theirs.t.getTime());
    } finally {
      await database.close();
    }
  });
});
