import { describe, expect, it } from 'vitest';
import { firstRevisionRelPath, nextRunOf, revisionRelPath } from './golden.js';

describe('golden image schedules and revision names', () => {
  const at = new Date('2026-12-01T06:30:00.000Z');

  it('reads cron in UTC: five fields, six with seconds, and the @ names', () => {
    expect(nextRunOf('0 3 * * *', at).toISOString()).toBe('2026-12-02T03:00:00.000Z');
    expect(nextRunOf('*/15 * * * * *', at).toISOString()).toBe('2026-12-01T06:30:15.000Z');
    expect(nextRunOf('@weekly', at).toISOString()).toBe('2026-12-06T00:00:00.000Z');
  });

  it('refuses what is not cron with INVALID_INPUT, the reason and the field', () => {
    for (const [schedule, reason] of [
      ['61 * * * *', /61/],
      ['every night', /./],
      ['* * * * * * *', /too many fields/],
    ] as const) {
      let error: unknown;
      try {
        nextRunOf(schedule, at);
      } catch (caught) {
        error = caught;
      }
      expect(error).toMatchObject({ code: 'INVALID_INPUT', details: { issues: [{ path: 'schedule' }] } });
      expect((error as Error).message).toMatch(reason);
    }
  });

  it('names revision N beside the first, in its folder, keeping the extension', () => {
    expect(revisionRelPath('images/ubuntu-24.04.qcow2', 2)).toBe('images/ubuntu-24.04.r2.qcow2');
    expect(revisionRelPath('images/disk', 3)).toBe('images/disk.r3');
    expect(revisionRelPath('images/.hidden', 4)).toBe('images/.hidden.r4');
    expect(revisionRelPath('a.b/disk', 5)).toBe('a.b/disk.r5');
    for (const first of ['images/ubuntu-24.04.qcow2', 'images/disk', 'a.b/disk', 'images/x.r2.qcow2']) {
      expect(firstRevisionRelPath(revisionRelPath(first, 7), 7)).toBe(first);
    }
    expect(firstRevisionRelPath('images/x.r2.qcow2', 3)).toBe('images/x.r2.qcow2');
  });
});
