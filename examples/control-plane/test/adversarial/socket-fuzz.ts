/**
 * A node that sends what the protocol's own description allows, and worse: messages generated
 * from the JSON Schema of `nodeMessageSchema` (every message type, mostly valid and in the
 * version spoken, some with hostile fields, some of another version) mixed with frames that are
 * no message at all. It says hello first, as a node must, and again after the control plane
 * closes its socket (a version it does not speak closes it). Given a pool it serves, it also sends
 * whole scans of it, in one message or in parts, mostly well formed (so that rows are made and the
 * ingest is probed, not only the parser). Every frame the control plane sends back is collected,
 * to be checked as any node would read it.
 */

import { performance } from 'node:perf_hooks';
import { NODE_CLOSE_CODES, nodeMessageSchema, PROTOCOL_VERSION, parseControlMessage } from '@quantix/core';
import fc from 'fast-check';
import WebSocket from 'ws';
import { z } from 'zod';
import { type FuzzContext, inputArbitrary, secretIn } from './fuzz.js';
import type { JsonSchema } from './operations.js';

export interface SocketFuzzReport {
  /** Frames sent, hellos included (not the probes that pace them). */
  sent: number;
  /** Times the control plane closed the socket and the node dialled again. */
  reconnects: number;
  /** Close codes the control plane gave, by code. */
  closes: Record<string, number>;
  /** Every frame the control plane sent, as text, with the frame of ours it answered (or followed), probes' answers included. */
  replies: { text: string; after: string }[];
}

/** Frames that are not a message: cut, binary, nested without end, empty. */
const JUNK = ['', '{', 'null', '[]', '"hello"', '{"type":"hello"}', '{"v":1}', '{"a":'.repeat(500), '\u0000'];

/** Path segments a pool really holds, and ones a hostile node would try. */
const segment = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/);
const HOSTILE_REL_PATHS = [
  '../escape.iso',
  '/etc/passwd.iso',
  'a//b.iso',
  './a.iso',
  'a\\b.iso',
  'vms/web/seed.iso',
  'x.iso\u0000.txt',
  `${'a/'.repeat(3000)}deep.iso`,
];
/** Mostly a timestamp as a node writes it; sometimes what no clock gives. */
const modifiedAt = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .date({ min: new Date(0), max: new Date('2100-01-01'), noInvalidDate: true })
      .map((d) => d.toISOString()),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      'yesterday',
      'NaN',
      '0000-01-01T00:00:00Z',
      '-271821-04-20T00:00:00Z',
      '+275760-09-13T00:00:00.000Z',
      '2024-13-45T99:99:99Z',
    ),
  },
);
/** A file as a node's listing reports it: mostly well formed, now and then a hostile path or date. */
const scannedFile = fc.record({
  relPath: fc.oneof(
    {
      weight: 12,
      arbitrary: fc
        .tuple(fc.array(segment, { maxLength: 2 }), segment)
        .map(([dirs, name]) => [...dirs, `${name}.iso`].join('/')),
    },
    { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_REL_PATHS) },
  ),
  kind: fc.constant('iso'),
  format: fc.constant('iso'),
  sizeBytes: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  modifiedAt,
});

/**
 * A whole scan of the pool the node serves, in one message or as a few parts: what makes rows.
 * The parts are sent as consecutive frames (a list of frames for one generated value).
 */
function scanArbitrary(poolId: string): fc.Arbitrary<string[]> {
  const files = fc.uniqueArray(scannedFile, { maxLength: 12, selector: (file) => file.relPath });
  const single = files.map((list) => [
    { v: PROTOCOL_VERSION, type: 'scan.result', poolId, content: 'iso', files: list },
  ]);
  const parts = fc.tuple(fc.uuid(), fc.array(files, { minLength: 2, maxLength: 3 })).map(([scanId, lists]) =>
    lists.map((list, part) => ({
      v: PROTOCOL_VERSION,
      type: 'scan.result',
      poolId,
      content: 'iso',
      files: list,
      scanId,
      part,
      final: part === lists.length - 1,
    })),
  );
  return fc.oneof(single, parts).map((messages) => messages.map((message) => JSON.stringify(message)));
}

/** Generated frames: messages of the version spoken (most), of any version, junk, or a scan of the node's own pool. */
function frameArbitrary(
  schema: JsonSchema,
  context: FuzzContext,
  servedPoolId?: string,
): fc.Arbitrary<(string | Buffer)[]> {
  const generated = generatedFrameArbitrary(schema, context).map((frame) => [frame]);
  return servedPoolId
    ? fc.oneof({ weight: 4, arbitrary: generated }, { weight: 1, arbitrary: scanArbitrary(servedPoolId) })
    : generated;
}

function generatedFrameArbitrary(schema: JsonSchema, context: FuzzContext): fc.Arbitrary<string | Buffer> {
  const message = inputArbitrary(schema, context, 'message');
  return fc.oneof(
    {
      weight: 6,
      arbitrary: message.map((m) =>
        JSON.stringify(m !== null && typeof m === 'object' && !Array.isArray(m) ? { ...m, v: PROTOCOL_VERSION } : m),
      ),
    },
    { weight: 1, arbitrary: message.map((m) => JSON.stringify(m) ?? 'null') },
    { weight: 1, arbitrary: fc.constantFrom(...JUNK) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 256 }).map((a) => Buffer.from(a)) },
  );
}

/** Where and as whom a node dials. */
export interface NodeDial {
  /** ws:// address of the node socket. */
  url: string;
  nodeId: string;
  token: string;
}

/** A node's socket that has said hello and been welcomed; `watch` sees it before the hello. */
async function welcomedSocket(dial: NodeDial, watch: (socket: WebSocket) => void = () => {}): Promise<WebSocket> {
  const socket = new WebSocket(dial.url, {
    headers: { authorization: `Bearer ${dial.token}`, 'x-quantix-node-id': dial.nodeId },
  });
  watch(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const welcomed = new Promise<void>((resolve, reject) => {
    const onMessage = (data: WebSocket.RawData) => {
      if (String(data).includes('"type":"welcome"')) {
        socket.off('message', onMessage);
        resolve();
      }
    };
    socket.on('message', onMessage);
    socket.once('close', (code) => reject(new Error(`closed (${code}) before the welcome`)));
  });
  socket.send(helloOf(dial.nodeId));
  await welcomed;
  return socket;
}

const helloOf = (nodeId: string) =>
  JSON.stringify({ v: PROTOCOL_VERSION, type: 'hello', nodeId, hostname: nodeId, agentVersion: 'socket-fuzz' });

/** `count` WebSocket ping round trips, one after the other, on a welcomed socket: the floor of a paced frame. */
export async function pingRoundTrips(dial: NodeDial, count: number): Promise<number> {
  const socket = await welcomedSocket(dial);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve) => {
      socket.once('pong', () => resolve());
      socket.ping();
    });
  }
  const elapsed = performance.now() - start;
  socket.close(1000, 'done');
  return elapsed;
}

/** The protocol's own description of what a node may send, as JSON Schema. */
const NODE_MESSAGE_SCHEMA = z.toJSONSchema(nodeMessageSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;

export async function runSocketFuzz(
  options: NodeDial & {
    context: FuzzContext;
    /** Generated values: a frame each, or the parts of one scan. */
    count: number;
    seed: number;
    /** A pool this node serves: whole scans of it are mixed in, to make (and probe) rows. */
    servedPoolId?: string;
  },
): Promise<SocketFuzzReport> {
  const frames = fc
    .sample(frameArbitrary(NODE_MESSAGE_SCHEMA, options.context, options.servedPoolId), {
      seed: options.seed,
      numRuns: options.count,
    })
    .flat();
  const report: SocketFuzzReport = { sent: 0, reconnects: 0, closes: {}, replies: [] };
  let last = '';
  const connect = async (): Promise<WebSocket> => {
    last = helloOf(options.nodeId);
    report.sent++;
    return welcomedSocket(options, (socket) => {
      socket.on('message', (data) => report.replies.push({ text: String(data), after: last }));
      socket.on('close', (code) => {
        report.closes[code] = (report.closes[code] ?? 0) + 1;
      });
    });
  };

  let socket = await connect();
  for (const frame of frames) {
    if (socket.readyState !== WebSocket.OPEN) {
      report.reconnects++;
      socket = await connect();
    }
    last = typeof frame === 'string' ? frame.slice(0, 300) : `(${frame.length} binary bytes)`;
    // Paced: each frame is followed by a WebSocket ping, which the control plane's socket answers
    // once it has read every frame before it; a close means the frame was read too. What a valid
    // message led to is handled behind it, in order.
    const read = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no pong after ${last}`)), 30_000);
      const done = () => {
        clearTimeout(timer);
        socket.off('pong', done);
        socket.off('close', done);
        resolve();
      };
      socket.once('pong', done);
      socket.once('close', done);
    });
    socket.send(frame);
    socket.ping();
    report.sent++;
    await read;
  }
  // A clean end: the control plane records the node gone once it has handled all it was sent.
  if (socket.readyState === WebSocket.OPEN) {
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.close(1000, 'fuzz done');
    await closed;
  }
  return report;
}

/**
 * What a node could fault in the answers: a frame that is no control message, an internal error,
 * a secret it did not send, a close for anything but a version it does not speak (or its own at the end).
 */
export function socketFuzzFailures(report: SocketFuzzReport, context: FuzzContext): string[] {
  const failures = report.replies.flatMap(({ text, after }) => {
    let problem: string | null = null;
    try {
      parseControlMessage(text);
    } catch (error) {
      problem = `not a control message (${(error as Error).message})`;
    }
    // Like a 5xx over HTTP: a message the control plane failed on rather than refused.
    if (!problem && text.includes('"code":"INTERNAL_ERROR"')) problem = 'the control plane failed on it';
    problem ??= secretIn(text, after, context);
    return problem ? [`after ${after.slice(0, 200)} → ${problem}: ${text.slice(0, 200)}`] : [];
  });
  const expected = new Set(['1000', String(NODE_CLOSE_CODES.protocolVersion)]);
  for (const [code, times] of Object.entries(report.closes)) {
    if (!expected.has(code)) failures.push(`the socket was closed with ${code} (${times}×)`);
  }
  return failures;
}
