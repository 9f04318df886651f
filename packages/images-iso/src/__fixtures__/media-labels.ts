/**
 * Descriptors of real installation media with the OS each one is, from public sources: see
 * media-labels.md for the columns, where the rows come from and which are held out.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MediaLabel {
  /** osinfo-db's short id of the OS the media are, as osinfo-db's own test data files them. */
  expected: string;
  family: string;
  volumeId: string;
  systemId: string;
  publisherId: string;
  applicationId: string;
  volumeSizeBytes: number;
  /** The installed osinfo-db (2022-12) has no entry of that short id. */
  newerThanDb: boolean;
  /** Collected after the family rules were written, to measure them on labels they were not shaped by. */
  heldOut: boolean;
  /**
   * The descriptors equal those of another release's media (NixOS unstable snapshots carry the
   * label of the release they lead to); only the date separates them, so no label reading can.
   */
  truthByDate: boolean;
  source: string;
}

export const MEDIA_LABELS_FILE = join(import.meta.dirname, 'media-labels.tsv');

export function readMediaLabels(file = MEDIA_LABELS_FILE): MediaLabel[] {
  const [header, ...lines] = readFileSync(file, 'utf8').split('\n').filter((line) => line !== '');
  const columns = (header ?? '').split('\t');
  return lines.map((line, index) => {
    const cells = line.split('\t');
    if (cells.length !== columns.length) throw new Error(`${file}:${index + 2}: ${cells.length} cells, expected ${columns.length}`);
    const cell = (name: string) => cells[columns.indexOf(name)] as string;
    return {
      expected: cell('expected_short_id'),
      family: cell('family'),
      volumeId: cell('volume_id'),
      systemId: cell('system_id'),
      publisherId: cell('publisher_id'),
      applicationId: cell('application_id'),
      volumeSizeBytes: Number(cell('volume_size_bytes')),
      newerThanDb: cell('newer_than_db') === '1',
      heldOut: cell('held_out') === '1',
      truthByDate: cell('truth_by_date') === '1',
      source: cell('source'),
    };
  });
}

export type Verdict = 'right' | 'wrong' | 'silent';

/**
 * Right: the release osinfo-db files the media under. Silent: no release claimed (no short id, or
 * osinfo-db's "-unknown" placeholder). Wrong: any other release claimed.
 */
export function verdict(expected: string, shortId: string | null): Verdict {
  if (shortId === expected) return 'right';
  if (shortId === null || /-unknown$/.test(shortId)) return 'silent';
  return 'wrong';
}
