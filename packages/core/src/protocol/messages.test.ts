import { describe, expect, it } from 'vitest';
import { ErrorCode, isQuantixError } from '../errors.js';
import { desiredPoolsFingerprint, scanEntryHash, scanFingerprint, stableJson } from './fingerprint.js';
import {
  agreeProtocolVersion,
  imageDownloadResultSchema,
  isSendableFileTime,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  parseControlMessage,
  parseNodeMessage,
  truncateText,
} from './messages.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isQuantixError(error) ? error.code : String(error);
  }
  return undefined;
}

describe('control-plane ⇄ node protocol', () => {
  it('round-trips a desired pool set through JSON', () => {
    const message = {
      v: PROTOCOL_VERSION,
      type: 'pools.desired' as const,
      generation: 7,
      pools: [
        {
          id: 'iso',
          name: 'ISO',
          type: 'nfs',
          config: { server: '10.0.0.1', export: '/srv/nfs/qVDS01' },
          contentTypes: ['iso' as const],
          shared: true,
        },
      ],
    };
    expect(parseControlMessage(JSON.stringify(message))).toEqual(message);
  });

  it('validates requests by operation', () => {
    const request = { v: 1, type: 'request', requestId: 'r1', request: { op: 'vm.stop', name: 'web-01' } };
    expect(parseControlMessage(request)).toMatchObject({ request: { op: 'vm.stop', name: 'web-01', force: false } });
    expect(codeOf(() => parseControlMessage({ ...request, request: { op: 'vm.explode' } }))).toBe(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
    );
    expect(
      codeOf(() =>
        parseControlMessage({
          ...request,
          request: {
            op: 'image.download',
            imageId: 'i',
            poolId: 'p',
            relPath: 'x',
            sourceUrl: 'not a url',
            checksum: null,
            checksumUrl: null,
          },
        }),
      ),
    ).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
  });

  it('accepts a node acknowledgement with per-pool state', () => {
    const ack = parseNodeMessage({
      v: 1,
      type: 'pools.state',
      generation: 7,
      pools: [
        {
          poolId: 'iso',
          status: 'unavailable',
          mountPath: null,
          capacityBytes: null,
          availableBytes: null,
          reason: 'mount: No such device',
        },
      ],
    });
    expect(ack.type).toBe('pools.state');
  });

  it('refuses another protocol version, non-JSON, and frames that miss fields', () => {
    expect(codeOf(() => parseNodeMessage({ v: 99, type: 'pools.state', generation: 1, pools: [] }))).toBe(
      ErrorCode.PROTOCOL_VERSION,
    );
    expect(codeOf(() => parseNodeMessage({ v: 0, type: 'response', requestId: 'r' }))).toBe(ErrorCode.PROTOCOL_VERSION);
    expect(codeOf(() => parseNodeMessage('{not json'))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    expect(codeOf(() => parseNodeMessage({ v: 1, type: 'hello', nodeId: 'n1' }))).toBe(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
    );
    expect(codeOf(() => parseNodeMessage({ v: 1, type: 'pools.state', generation: -1, pools: [] }))).toBe(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
    );
  });

  it('reads a hello of any version, and agrees on the highest version both sides speak', () => {
    const hello = parseNodeMessage({
      v: 7,
      type: 'hello',
      nodeId: 'n1',
      hostname: 'n1',
      agentVersion: '9.0.0',
      protocol: { min: 1, max: 7 },
    });
    expect(hello).toMatchObject({ type: 'hello', protocol: { min: 1, max: 7 } });
    expect(agreeProtocolVersion({ min: 1, max: 7 }, { min: 1, max: 2 })).toBe(2);
    expect(agreeProtocolVersion({ min: 1, max: 1 }, { min: 1, max: 2 })).toBe(1);
    expect(agreeProtocolVersion({ min: 3, max: 4 }, { min: 1, max: 2 })).toBeNull();
    expect(codeOf(() => parseNodeMessage({ ...hello, protocol: { min: 3, max: 1 } }))).toBe(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
    );
  });

  describe('limits: no string or array a node sends is unbounded', () => {
    const state = (reason: string) => ({
      v: 1,
      type: 'pools.state',
      generation: 1,
      pools: [{ poolId: 'p', status: 'error', mountPath: null, capacityBytes: null, availableBytes: null, reason }],
    });
    const hello = (fields: Record<string, unknown>) => ({
      v: 1,
      type: 'hello',
      nodeId: 'n1',
      hostname: 'hv1',
      agentVersion: '1',
      ...fields,
    });
    const file = (fields: Record<string, unknown> = {}) => ({
      relPath: 'a.iso',
      kind: 'iso',
      format: 'iso',
      sizeBytes: 1,
      modifiedAt: '2026-01-01T00:00:00.000Z',
      ...fields,
    });
    const scan = (files: unknown[]) => ({ v: 1, type: 'scan.result', poolId: 'p', content: 'iso', files });
    const invalid = (message: unknown) => codeOf(() => parseNodeMessage(message));

    it('scan.result: skipped paths and invalid files are optional (a version 1 node sends neither) and bounded', () => {
      const v1 = parseNodeMessage(scan([file()]));
      expect(v1.type === 'scan.result' && [v1.skipped, v1.invalid]).toEqual([undefined, undefined]);
      const v2 = parseNodeMessage({
        ...scan([file({ firmware: 'uefi' })]),
        v: 2,
        skipped: [{ relPath: 'locked', reason: 'unreadable (EACCES)' }],
        invalid: [{ relPath: 'notes.iso', code: 'ISO_NOT_ISO9660', message: 'not an ISO' }],
      });
      expect(v2).toMatchObject({
        files: [{ firmware: 'uefi' }],
        skipped: [{ relPath: 'locked' }],
        invalid: [{ code: 'ISO_NOT_ISO9660' }],
      });
      const reason = 'r'.repeat(PROTOCOL_LIMITS.reason + 1);
      expect(invalid({ ...scan([]), skipped: [{ relPath: 'a', reason }] })).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid({ ...scan([]), invalid: [{ relPath: 'a', code: '', message: 'm' }] })).toBe(
        ErrorCode.PROTOCOL_INVALID_MESSAGE,
      );
    });

    it("a file's modification time is an ISO 8601 instant from year 1 to 9999, as the database stores it", () => {
      for (const modifiedAt of ['2026-01-01T00:00:00.000Z', '1901-12-13T20:45:52Z', '2446-05-10T22:38:55+02:00']) {
        expect(parseNodeMessage(scan([file({ modifiedAt })])).type, modifiedAt).toBe('scan.result');
      }
      for (const modifiedAt of ['', 'yesterday', 'NaN', '2024-13-45T99:99:99Z', '0000-01-01T00:00:00Z']) {
        expect(invalid(scan([file({ modifiedAt })])), modifiedAt).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      }
      // What toISOString writes past year 9999 or before year 0, which a node reports as skipped instead.
      for (const modifiedAt of ['+010000-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z']) {
        expect(invalid(scan([file({ modifiedAt })])), modifiedAt).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      }
      expect(isSendableFileTime(Date.UTC(9999, 11, 31, 23, 59, 59, 999))).toBe(true);
      expect(isSendableFileTime(Date.UTC(10_000, 0, 1))).toBe(false);
      expect(isSendableFileTime(Number.NaN)).toBe(false);
    });

    it('scan.delta: changes against a base fingerprint, bounded; pool.scan may carry `since`', () => {
      const delta = {
        v: 2,
        type: 'scan.delta',
        poolId: 'p',
        content: 'iso',
        base: '2-1f',
        fingerprint: '2-2a',
        files: [file()],
        removed: ['gone.iso'],
      };
      expect(parseNodeMessage(delta)).toMatchObject({ type: 'scan.delta', removed: ['gone.iso'] });
      expect(invalid({ ...delta, base: 'anything' })).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid({ ...delta, removed: [''] })).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid({ ...delta, removed: new Array(PROTOCOL_LIMITS.scanFilesPerMessage + 1).fill('a.iso') })).toBe(
        ErrorCode.PROTOCOL_INVALID_MESSAGE,
      );
      const request = (since: unknown) =>
        parseControlMessage({
          v: 2,
          type: 'request',
          requestId: 'r',
          request: { op: 'pool.scan', poolId: 'p', content: 'iso', since },
        });
      expect(request('20000-e677f8532f75')).toMatchObject({ request: { since: '20000-e677f8532f75' } });
      expect(codeOf(() => request('x'.repeat(100)))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    });

    it('a scan fingerprint does not depend on the order of files, and moves with any file fact', () => {
      const a = { relPath: 'a.iso', sizeBytes: 40960, modifiedMs: 1_764_000_000_000 };
      const b = { relPath: 'dir/b.iso', sizeBytes: 2 ** 40, modifiedMs: 1_764_000_000_123 };
      const of = (...files: (typeof a)[]) => scanFingerprint(files.map(scanEntryHash));
      expect(of(a, b)).toBe(of(b, a));
      expect(of(a, b)).toMatch(/^2-[0-9a-f]+$/);
      expect(of()).toBe('0-0');
      expect(of(a, { ...b, sizeBytes: b.sizeBytes + 1 })).not.toBe(of(a, b));
      expect(of(a, { ...b, modifiedMs: b.modifiedMs + 1 })).not.toBe(of(a, b));
      expect(of(a, { ...b, relPath: 'dir/c.iso' })).not.toBe(of(a, b));
      expect(of(a)).not.toBe(of(a, b));
    });

    it('a desired-pools fingerprint is the same for the same definitions in any order, and moves with any field', () => {
      const iso = {
        id: 'iso',
        name: 'ISO',
        type: 'nfs',
        config: { server: '10.0.0.1', export: '/srv', options: { vers: 4 } },
        contentTypes: ['iso' as const],
        shared: true,
      };
      const disks = {
        id: 'disks',
        name: 'Disks',
        type: 'local',
        config: { path: '/srv/d' },
        contentTypes: [],
        shared: false,
      };
      // Keys in another order (as another process built or parsed them), pools in another order.
      const reordered = JSON.parse(
        '{"shared":true,"contentTypes":["iso"],"config":{"options":{"vers":4},"export":"/srv","server":"10.0.0.1"},"type":"nfs","name":"ISO","id":"iso"}',
      );
      expect(desiredPoolsFingerprint([disks, reordered])).toBe(desiredPoolsFingerprint([iso, disks]));
      expect(desiredPoolsFingerprint([])).toMatch(/^[A-Za-z0-9_-]{43}$/);
      for (const changed of [
        { ...iso, name: 'ISO 2' },
        { ...iso, shared: false },
        { ...iso, contentTypes: ['iso' as const, 'images' as const] },
        { ...iso, config: { ...iso.config, options: { vers: 3 } } },
      ]) {
        expect(desiredPoolsFingerprint([changed, disks])).not.toBe(desiredPoolsFingerprint([iso, disks]));
      }
      expect(desiredPoolsFingerprint([iso])).not.toBe(desiredPoolsFingerprint([iso, disks]));
      // Code-unit order, whatever the locale: 'B' sorts before 'a' on every machine.
      expect(stableJson({ a: 1, B: [2, undefined], c: undefined })).toBe('{"B":[2,null],"a":1}');
    });

    it('a hello says the pools it holds (bounded), and a welcome may take them as current', () => {
      const reports = (n: number) =>
        Array.from({ length: n }, (_, i) => ({
          poolId: `p${i}`,
          status: 'active',
          mountPath: `/srv/p${i}`,
          capacityBytes: null,
          availableBytes: null,
          reason: null,
        }));
      const hello = (count: number) => ({
        v: PROTOCOL_VERSION,
        type: 'hello',
        nodeId: 'n1',
        hostname: 'h',
        agentVersion: '1',
        pools: { generation: 3, fingerprint: desiredPoolsFingerprint([]), reports: reports(count) },
      });
      const parsed = parseNodeMessage(hello(2));
      expect(parsed.type === 'hello' && parsed.pools?.reports).toHaveLength(2);
      expect(codeOf(() => parseNodeMessage(hello(PROTOCOL_LIMITS.pools + 1)))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      const welcome = {
        v: 4,
        type: 'welcome',
        nodeId: 'n1',
        serverTime: 'now',
        protocol: 4,
        poolsCurrent: { generation: 3 },
      };
      expect(parseControlMessage(welcome)).toEqual(welcome);
      expect(codeOf(() => parseControlMessage({ ...welcome, poolsCurrent: { generation: -1 } }))).toBe(
        ErrorCode.PROTOCOL_INVALID_MESSAGE,
      );
    });

    it('a pool state reason ≤ 1 KiB (the 60 MiB reason of the report is refused)', () => {
      expect(parseNodeMessage(state('x'.repeat(PROTOCOL_LIMITS.reason))).type).toBe('pools.state');
      expect(invalid(state('x'.repeat(PROTOCOL_LIMITS.reason + 1)))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    });

    it('names ≤ 255, paths ≤ 4096, ids ≤ 128, short fields ≤ 64', () => {
      expect(invalid(hello({ hostname: 'h'.repeat(256) }))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(hello({ agentVersion: 'v'.repeat(65) }))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(hello({ nodeId: 'n'.repeat(129) }))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(scan([file({ relPath: 'p'.repeat(4097) })]))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(scan([file({ name: 'n'.repeat(256) })]))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(scan([file({ modifiedAt: 't'.repeat(65) })]))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(scan([file({ os: { distribution: 'd'.repeat(65) } })]))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      const mount = state('r');
      (mount.pools[0] as { mountPath: string | null }).mountPath = `/${'m'.repeat(4096)}`;
      expect(invalid(mount)).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(
        invalid({
          v: 1,
          type: 'response',
          requestId: 'r1',
          error: { code: 'COMMAND_FAILED', message: 'm'.repeat(PROTOCOL_LIMITS.reason + 1) },
        }),
      ).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    });

    it('arrays and passed-through JSON are bounded too', () => {
      const labels = Object.fromEntries(Array.from({ length: PROTOCOL_LIMITS.labels + 1 }, (_, i) => [`k${i}`, 'v']));
      expect(invalid(scan([file({ labels })]))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(scan(Array.from({ length: PROTOCOL_LIMITS.scanFilesPerMessage + 1 }, () => file())))).toBe(
        ErrorCode.PROTOCOL_INVALID_MESSAGE,
      );
      const many = state('r');
      many.pools = Array.from({ length: PROTOCOL_LIMITS.pools + 1 }, () => many.pools[0] as (typeof many.pools)[0]);
      expect(invalid(many)).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
      expect(invalid(hello({ capabilities: { big: 'x'.repeat(PROTOCOL_LIMITS.jsonBytes) } }))).toBe(
        ErrorCode.PROTOCOL_INVALID_MESSAGE,
      );
      expect(
        invalid({ v: 1, type: 'response', requestId: 'r1', result: { big: 'x'.repeat(PROTOCOL_LIMITS.jsonBytes) } }),
      ).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    });

    it('the error it answers with stays short whatever the node sent', () => {
      for (const message of [{ v: 'v'.repeat(100_000) }, { v: 1, type: 't'.repeat(100_000) }]) {
        try {
          parseNodeMessage(message);
          expect.unreachable();
        } catch (error) {
          expect((error as Error).message.length).toBeLessThanOrEqual(PROTOCOL_LIMITS.reason);
          expect(JSON.stringify((error as { details: unknown }).details).length).toBeLessThan(200);
        }
      }
    });

    it('truncateText keeps text within a limit and marks the cut', () => {
      expect(truncateText('short')).toBe('short');
      const cut = truncateText('x'.repeat(5000));
      expect(cut).toHaveLength(PROTOCOL_LIMITS.reason);
      expect(cut.endsWith('…')).toBe(true);
    });
  });

  it('stays compatible: a hello without downloads, a welcome without a limit and a whole scan are all still valid', () => {
    expect(parseNodeMessage({ v: 1, type: 'hello', nodeId: 'n1', hostname: 'h', agentVersion: '1' })).toMatchObject({
      capabilities: {},
    });
    expect(
      parseControlMessage({ v: 1, type: 'welcome', nodeId: 'n1', serverTime: new Date().toISOString() }).type,
    ).toBe('welcome');
    const hello = parseNodeMessage({
      v: 1,
      type: 'hello',
      nodeId: 'n1',
      hostname: 'h',
      agentVersion: '1',
      downloads: [
        { imageId: 'i1', poolId: 'p', relPath: 'cloud/a.qcow2', state: 'running', bytesDone: 10 },
        {
          imageId: 'i2',
          poolId: 'p',
          relPath: 'cloud/b.qcow2',
          state: 'done',
          result: { sizeBytes: 5, checksum: { algorithm: 'sha256', value: 'a'.repeat(64) }, format: 'qcow2' },
        },
      ],
    });
    expect(hello.type === 'hello' && hello.downloads?.length).toBe(2);
    expect(
      imageDownloadResultSchema.safeParse({ sizeBytes: 1, checksum: { algorithm: 'md5', value: 'x' } }).success,
    ).toBe(false);
  });
});
