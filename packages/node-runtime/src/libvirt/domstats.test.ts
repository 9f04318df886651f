/**
 * `virsh domstats --state` read into states and the reasons worth telling. The text is virsh's
 * own: the first two blocks as libvirt's test driver printed them (`suspend test; domstats
 * --state`, then `destroy test`), the others in the same form with the numbers libvirt gives a
 * guest QEMU paused on a write error (VIR_DOMAIN_PAUSED_IOERROR), one shut off after a crash and
 * one whose kernel panicked. The system e2e sees the I/O error from a real QEMU.
 */
import { describe, expect, it } from 'vitest';
import { parseDomstatsStates } from './hypervisor.js';

describe('parseDomstatsStates', () => {
  it('reads each domain’s state, and the reason where it is one to act on', () => {
    const output = [
      "Domain: 'paused by a user'",
      '  state.state=3',
      '  state.reason=1',
      '',
      "Domain: 'destroyed'",
      '  state.state=5',
      '  state.reason=2',
      '',
      "Domain: 'disk full'",
      '  state.state=3',
      '  state.reason=5',
      '',
      "Domain: 'crashed, then off'",
      '  state.state=5',
      '  state.reason=3',
      '',
      "Domain: 'panicked'",
      '  state.state=6',
      '  state.reason=1',
      '',
      "Domain: 'running'",
      '  state.state=1',
      '  state.reason=5',
      '',
    ].join('\n');
    expect(Object.fromEntries(parseDomstatsStates(output))).toEqual({
      'paused by a user': { state: 'paused' },
      destroyed: { state: 'shutoff' },
      'disk full': { state: 'paused', reason: 'ioerror' },
      'crashed, then off': { state: 'shutoff', reason: 'crashed' },
      panicked: { state: 'crashed', reason: 'panicked' },
      // Reason numbers belong to their state: 5 of a running domain is not an I/O error.
      running: { state: 'running' },
    });
  });
});
