import pg from 'pg';

/**
 * A plain `pg` pool: a bench's peer side (the same SQL without Quantix) or its own reads.
 *
 * Its idle connections' errors are expected, not fatal: `end()` resolves before the connections
 * it ends have closed, so the test database's forced drop that follows can still end one of them
 * (57P01, "terminating connection due to administrator command"), and an idle connection the
 * server ends mid-run is replaced on the next query. Unhandled, that 'error' ends the bench
 * process (as it did once at the end of pool-sync's full run).
 */
export function rawPool(connectionString: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString, max });
  pool.on('error', () => undefined);
  return pool;
}
