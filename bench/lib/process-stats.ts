/** What a process has used, from /proc: CPU time and peak resident set. */
import { readFileSync } from 'node:fs';
import type pg from 'pg';

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), which ends at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/**
 * The CPU time `pids` use from now until the returned function is called, in ms. A process that
 * ends in between is left out of both ends (its last reading is gone).
 */
export function cpuFrom(pids: readonly number[]): () => number {
  const read = (pid: number) => {
    try {
      return cpuMs(pid);
    } catch {
      return undefined; // the process has ended
    }
  };
  const before = pids.map((pid) => [pid, read(pid)] as const);
  return () =>
    before.reduce((sum, [pid, start]) => {
      const now = read(pid);
      return start === undefined || now === undefined ? sum : sum + now - start;
    }, 0);
}

/** A process's peak resident set (VmHWM), in MB. */
export function peakRssMb(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kb) throw new Error(`no VmHWM for process ${pid}`);
  return Number(kb) / 1024;
}

/**
 * The server processes of `pool`'s database but the one answering this query: the control
 * plane's connections and the bench's own others, whose CPU is what PostgreSQL spends on a run.
 */
export async function postgresBackendPids(pool: pg.Pool): Promise<number[]> {
  const result = await pool.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
  );
  return result.rows.map((row) => row.pid);
}
