/**
 * bench/live-events — what a web UI tab costs while it follows downloads, pushed (the live event
 * stream, GET /api/v1/events) beside its natural peer, the polling the UI did before (GET
 * /api/v1/images?limit=50 every second while something moves), in one run on one control plane
 * on PostgreSQL with 50 images, 3 of them downloading (progress raised 10 times a second each).
 * Prints, per watching tab: bytes per second it receives, and how late it learns of progress
 * (pushed: measured from the event's raising to its arrival; polled: half the interval plus the
 * measured request time, the expected staleness of a 1 s poll).
 * The watchers run in the bench's process beside the server: figures are bytes and delays, not
 * throughput, which that would distort. QUANTIX_BENCH_QUICK=1 runs a small version (CI).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createQuantix } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { startControlPlane } from '@quantix/example-control-plane';
import { pino } from 'pino';
import { benchResults } from './lib/results.js';
import { median } from './lib/stats.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const WATCHERS = quick ? 5 : 50;
const SECONDS = quick ? 3 : 20;
const DOWNLOADS = 3;
const TOKEN = 'bench-live-events';
const POLL_MS = 1000;

const testDb = await createPostgresTestDatabase();
const quantix = await createQuantix({ database: testDb.config, logger: pino({ level: 'silent' }) });
const cp = await startControlPlane({ quantix, apiToken: TOKEN });
const auth = { authorization: `Bearer ${TOKEN}` };
try {
  await quantix.repositories.nodes.create({ id: 'bench-node', hostname: 'bench-node' });
  await quantix.repositories.pools.create({
    id: 'bench-pool',
    name: 'bench-pool',
    type: 'local',
    contentTypes: ['images'],
    nodeIds: ['bench-node'],
  });
  await quantix.repositories.images.upsertByLocation(
    Array.from({ length: 50 }, (_, i) => ({
      poolId: 'bench-pool',
      relPath: `cloud/image-${i}.qcow2`,
      kind: 'cloud' as const,
      format: 'qcow2' as const,
      sizeBytes: 1e9 + i,
    })),
  );
  const downloading = (await quantix.repositories.images.list({ limit: DOWNLOADS })).map((image) => image.id);

  /** Raises progress for the downloading images, 10 times a second each, for the run. */
  const raiseProgress = (seconds: number) =>
    new Promise<void>((resolve) => {
      const end = Date.now() + seconds * 1000;
      const timer = setInterval(() => {
        for (const imageId of downloading) {
          quantix.events.emit('image.progress', {
            imageId,
            // The moment it was raised, so a watcher can tell how late it arrived.
            progress: { bytesDone: performance.timeOrigin + performance.now(), bytesTotal: null, percent: null },
            bytesPerSecond: null,
            etaSeconds: null,
          });
        }
        if (Date.now() >= end) {
          clearInterval(timer);
          resolve();
        }
      }, 100);
    });

  // Pushed: each watcher opens the stream with its own ticket and counts what arrives.
  const pushed = async () => {
    let bytes = 0;
    const delays: number[] = [];
    const streams: IncomingMessage[] = [];
    for (let i = 0; i < WATCHERS; i++) {
      const ticket = (await (
        await fetch(`${cp.url}/api/v1/events/tickets`, { method: 'POST', headers: auth })
      ).json()) as {
        path: string;
      };
      const stream = await new Promise<IncomingMessage>((resolve) =>
        httpRequest(`${cp.url}${ticket.path}`, resolve).end(),
      );
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        bytes += Buffer.byteLength(chunk);
        const now = performance.timeOrigin + performance.now();
        for (const match of chunk.matchAll(/"bytesDone":([\d.]+)/g)) delays.push(now - Number(match[1]));
      });
      streams.push(stream);
    }
    await raiseProgress(SECONDS);
    for (const stream of streams) stream.destroy();
    return { bytesPerWatcherSecond: bytes / WATCHERS / SECONDS, delayMs: median(delays) };
  };

  // Polled: each watcher asks for the list every second, as the UI did while something moved.
  const polled = async () => {
    let bytes = 0;
    const times: number[] = [];
    const end = Date.now() + SECONDS * 1000;
    const watcher = async (offset: number) => {
      await new Promise((resolve) => setTimeout(resolve, offset));
      while (Date.now() < end) {
        const began = performance.now();
        const response = await fetch(`${cp.url}/api/v1/images?limit=50`, { headers: auth });
        bytes += (await response.arrayBuffer()).byteLength;
        times.push(performance.now() - began);
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    };
    await Promise.all([
      raiseProgress(SECONDS),
      ...Array.from({ length: WATCHERS }, (_, i) => watcher((i * POLL_MS) / WATCHERS)),
    ]);
    return { bytesPerWatcherSecond: bytes / WATCHERS / SECONDS, delayMs: POLL_MS / 2 + median(times) };
  };

  const peer = await polled();
  const ours = await pushed();
  const results = benchResults('live-events');
  console.log(
    results.add({
      name: `${WATCHERS} tabs following ${DOWNLOADS} downloads: bytes received`,
      unit: 'B/s per tab',
      better: 'lower',
      ours: { label: 'event stream', value: ours.bytesPerWatcherSecond },
      peer: { label: 'GET /images every 1 s', value: peer.bytesPerWatcherSecond },
    }),
  );
  console.log(
    results.add({
      name: `${WATCHERS} tabs following ${DOWNLOADS} downloads: progress shown late by`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'event stream (measured p50)', value: ours.delayMs },
      peer: { label: 'GET /images every 1 s (interval/2 + p50 request)', value: peer.delayMs },
      target: { ratio: 1 },
    }),
  );
  await results.save();
} finally {
  await cp.close();
  await quantix.close();
  await testDb.dispose();
}
