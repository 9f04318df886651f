import { describe, expect, it } from 'vitest';
import { ErrorCode, isQuantixError } from '../errors.js';
import { PROTOCOL_VERSION, parseControlMessage, parseNodeMessage } from './messages.js';

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
    expect(codeOf(() => parseNodeMessage({ v: 2, type: 'hello' }))).toBe(ErrorCode.PROTOCOL_VERSION);
    expect(codeOf(() => parseNodeMessage('{not json'))).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    expect(codeOf(() => parseNodeMessage({ v: 1, type: 'hello', nodeId: 'n1' }))).toBe(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
    );
    expect(codeOf(() => parseNodeMessage({ v: 1, type: 'pools.state', generation: -1, pools: [] }))).toBe(
      ErrorCode.PROTOCOL_INVALID_MESSAGE,
    );
  });
});
