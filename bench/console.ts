/**
 * bench/console — a VM's VNC display through Quantix's console relay (a ticket from the API, the
 * viewer's WebSocket to the control plane, the node's relay WebSocket back to it, socat on the
 * node to QEMU's VNC port) beside its natural peer: a viewer connected straight to that port over
 * TCP, as an SSH tunnel would give it. The same minimal RFB viewer (bench/lib/rfb.ts) runs on
 * both sides, in alternating rounds:
 *   1. opening: from asking for the console to QEMU's RFB greeting (ours: a ticket, the console
 *      opened on the node, the upgrade; peer: a TCP connect), median;
 *   2. the handshake that follows, three round trips QEMU answers at once: what the path adds to
 *      every exchange (a keystroke's echo), median, and its p99 per round trip against one frame
 *      at 60 Hz. (QEMU sends framebuffer updates on its display refresh timer, 30 ms to 3 s, so
 *      they measure QEMU, not the path; there is no screen throughput line for that reason.)
 * The control plane and its node run all-in-one in this process (embedded PGlite, libvirt's
 * qemu:///system), as `quantix up` runs them; the VM boots SeaBIOS from an empty disk.
 * QUANTIX_BENCH_QUICK=1: 5 rounds (full: 100).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { startFileServer } from './lib/file-server.js';
import { benchApi, downloadReady, startImageSystem } from './lib/images.js';
import { againstBound, benchResults } from './lib/results.js';
import { type ByteLink, rfbGreeting, rfbHandshake } from './lib/rfb.js';
import { median, percentile } from './lib/stats.js';

const run = promisify(execFile);
const results = benchResults('console');
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const ROUNDS = quick ? 5 : 100;
/** One frame at 60 Hz: a relay adding less than this to a keystroke's echo is not seen. */
const FRAME_MS = 1000 / 60;
const repoRoot = join(import.meta.dirname, '..');

await run('bash', [join(repoRoot, 'scripts/services.sh'), 'libvirt'], { timeout: 600_000 });
await run('bash', [join(repoRoot, 'scripts/ensure-packages.sh'), 'socat'], { timeout: 900_000 });

const work = mkdtempSync(join(tmpdir(), 'quantix-bench-console-'));
// An empty disk: SeaBIOS finds nothing to boot and shows its screen, which is all VNC needs.
const disk = join(work, 'empty.img');
const diskBytes = Buffer.alloc(1024 * 1024);
writeFileSync(disk, diskBytes);
writeFileSync(`${disk}.SHA256SUMS`, `${createHash('sha256').update(diskBytes).digest('hex')} *empty.img\n`);

function tcpLink(port: number): Promise<ByteLink> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve({
        write: (data) => socket.write(data),
        onData: (listener) => socket.on('data', listener),
        close: () => socket.destroy(),
      }),
    );
  });
}

function webSocketLink(url: string): Promise<ByteLink> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    // Frames may come in the same tick as the upgrade: kept until a listener is there.
    const early: Buffer[] = [];
    let listener: ((data: Buffer) => void) | undefined;
    socket.on('message', (data: Buffer) => (listener ? listener(data) : early.push(data)));
    socket.once('error', reject);
    socket.once('unexpected-response', (_request, response) =>
      reject(new Error(`the console was refused: ${response.statusCode}`)),
    );
    socket.once('open', () =>
      resolve({
        write: (data) => socket.send(data),
        onData: (next) => {
          listener = next;
          for (const data of early.splice(0)) next(data);
        },
        close: () => socket.terminate(),
      }),
    );
  });
}

const fileServer = await startFileServer(disk, diskBytes.length);
const system = await startImageSystem({
  dataDir: join(work, 'data'),
  port: fileServer.port,
  file: 'empty.img',
  catalogId: 'bench-console',
  libvirtUri: 'qemu:///system',
});
const api = benchApi(system);
let vmId: string | undefined;
try {
  const image = await downloadReady(api, 'bench-console', 'local');
  const vmName = `qxb-console-${process.pid.toString(36)}`;
  const vm = await api('POST', '/vms', { name: vmName, nodeId: 'local', imageId: image.id, memoryMiB: 64, diskGiB: 1 });
  if (typeof vm.id !== 'string') throw new Error(`the VM was not created: ${JSON.stringify(vm)}`);
  vmId = vm.id;
  for (let state = vm.state; state !== 'running'; state = (await api('GET', `/vms/${vmId}`)).state) {
    if (state === 'error') throw new Error('the VM failed to start');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const display = (await run('virsh', ['-q', '-c', 'qemu:///system', 'vncdisplay', vmName])).stdout.trim();
  const vncPort = 5900 + Number(display.slice(display.lastIndexOf(':') + 1));

  const openRelay = async () => {
    const ticket = await api('POST', `/vms/${vmId}/console/tickets`, { type: 'vnc' });
    return webSocketLink(`${system.url.replace(/^http/, 'ws')}${ticket.path}`);
  };
  const sides = { ours: openRelay, peer: () => tcpLink(vncPort) };
  type Side = keyof typeof sides;

  // Interleaved: each round opens one console per side, to the greeting, then shakes hands.
  const opening: Record<Side, number[]> = { ours: [], peer: [] };
  const handshake: Record<Side, number[]> = { ours: [], peer: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of ['peer', 'ours'] as const) {
      const start = performance.now();
      const link = await sides[side]();
      const { greeting, queue } = await rfbGreeting(link);
      const greeted = performance.now();
      if (!/^RFB 003\.00\d\n$/.test(greeting)) throw new Error(`${side}: not a VNC greeting: ${greeting}`);
      const session = await rfbHandshake(link, queue);
      handshake[side].push(performance.now() - greeted);
      opening[side].push(greeted - start);
      if (session.width === 0 || session.height === 0) throw new Error(`${side}: an empty screen`);
      link.close();
    }
  }

  const relay = 'console relay (ticket, WebSocket, node relay, socat)';
  const direct = 'TCP straight to QEMU’s VNC port';
  console.log(
    results.add({
      name: 'open a VNC console, to its greeting',
      unit: 'ms',
      better: 'lower',
      ours: { label: relay, value: median(opening.ours) },
      peer: { label: direct, value: median(opening.peer) },
      details: { rounds: ROUNDS, oursP99: percentile(opening.ours, 99) },
    }),
  );
  console.log(
    results.add({
      name: 'VNC handshake (3 round trips), p50',
      unit: 'ms',
      better: 'lower',
      ours: { label: 'through the relay', value: median(handshake.ours) },
      peer: { label: direct, value: median(handshake.peer) },
      details: { rounds: ROUNDS, oursP99: percentile(handshake.ours, 99) },
    }),
  );
  console.log(
    results.add(
      againstBound({
        name: 'relay round trip p99, vs one 60 Hz frame',
        unit: 'ms',
        better: 'lower',
        ours: { label: 'through the relay', value: percentile(handshake.ours, 99) / 3 },
        bound: { label: 'one frame at 60 Hz', value: FRAME_MS },
      }),
    ),
  );
  await results.save();
} finally {
  if (vmId) await api('DELETE', `/vms/${vmId}`).catch(() => undefined);
  await system.close();
  await fileServer.stop();
  rmSync(work, { recursive: true, force: true });
}
