import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  type CpuProfile,
  type HeapProfile,
  placeOf,
  summarizeCpuProfile,
  summarizeHeapProfile,
} from './profile-summary.js';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });

// A CPU profile as `node --cpu-prof` writes it: a call tree, the node each sample landed on, and
// the microseconds between samples. Samples: idle 5 ms, pg's submit 2 ms, writev under it 3 ms,
// the collector 4 ms, our welcome 1 ms (the last sample's time is not known: 0).
const cpuProfile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 4, 5] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('submit', 'file:///w/node_modules/pg/lib/query.js', 150), children: [6] },
    { id: 4, callFrame: frame('(garbage collector)') },
    { id: 5, callFrame: frame('welcome', 'file:///w/packages/control-plane/dist/index.js', 1440) },
    { id: 6, callFrame: frame('writev') },
  ],
  startTime: 0,
  endTime: 16_000,
  samples: [2, 3, 6, 4, 5, 5],
  timeDeltas: [1000, 5000, 2000, 3000, 4000, 1000],
};

describe('profile summary', () => {
  it('names where code lives: npm package, workspace package, example app, Node, V8 pseudo-frames', () => {
    expect(placeOf(frame('parse', 'file:///w/node_modules/@fastify/websocket/index.js'))).toBe('@fastify/websocket');
    expect(placeOf(frame('x', 'file:///w/node_modules/pg/lib/client.js'))).toBe('pg');
    expect(placeOf(frame('x', 'file:///w/packages/core/dist/index.js'))).toBe('@quantix/core');
    expect(placeOf(frame('x', 'file:///w/examples/control-plane/dist/chunk-A.js'))).toBe('examples/control-plane');
    expect(placeOf(frame('emit', 'node:events'))).toBe('node');
    expect(placeOf(frame('(garbage collector)'))).toBe('(garbage collector)');
    expect(placeOf(frame('writev'))).toBe('(native)');
  });

  it('sums self time by place and function, idle apart', () => {
    const summary = summarizeCpuProfile(cpuProfile);
    expect(summary).toMatchObject({ sampledMs: 15, idleMs: 5, busyMs: 10 });
    expect(summary.byPlace).toEqual([
      { name: '(garbage collector)', value: 4 },
      { name: '(native)', value: 3 },
      { name: 'pg', value: 2 },
      { name: '@quantix/control-plane', value: 1 },
    ]);
    expect(summary.byFunction[0]).toEqual({ name: '(garbage collector)', value: 4 });
    expect(summary.byFunction).toContainEqual({ name: 'pg submit query.js:151', value: 2 });
  });

  it('gives the stacks above a function, and keeps only the last milliseconds when asked', () => {
    const summary = summarizeCpuProfile(cpuProfile, { callers: 'writev' });
    expect(summary.callers).toEqual([{ name: 'submit query.js:151 < (root)', value: 3 }]);
    // The samples at 15 and 16 ms (our welcome): 1 ms known.
    const last = summarizeCpuProfile(cpuProfile, { lastMs: 1 });
    expect(last.byPlace).toEqual([{ name: '@quantix/control-plane', value: 1 }]);
  });

  const heapProfile: HeapProfile = {
    head: {
      callFrame: frame('(root)'),
      selfSize: 0,
      children: [
        {
          callFrame: frame('bind', 'file:///w/node_modules/pg/lib/connection.js', 186),
          selfSize: 1000,
          children: [
            {
              callFrame: frame('arrayString', 'file:///w/node_modules/pg/lib/utils.js', 21),
              selfSize: 3000,
              children: [],
            },
          ],
        },
        {
          callFrame: frame('runChecks', 'file:///w/node_modules/zod/v4/core/schemas.js', 32),
          selfSize: 2000,
          children: [],
        },
      ],
    },
  };

  it('sums allocated bytes by place, and by frame with its callers', () => {
    const summary = summarizeHeapProfile(heapProfile);
    expect(summary.totalBytes).toBe(6000);
    expect(summary.byPlace).toEqual([
      { name: 'pg', value: 4000 },
      { name: 'zod', value: 2000 },
    ]);
    expect(summary.byFrame[0]).toEqual({
      name: 'pg arrayString utils.js:22 < bind connection.js:187 < (root)',
      value: 3000,
    });
  });

  it('prints a profile file it is given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantix-profile-summary-'));
    try {
      const file = join(dir, 'run.cpuprofile');
      await writeFile(file, JSON.stringify(cpuProfile));
      const { stdout } = await promisify(execFile)(process.execPath, [
        '--import',
        'tsx',
        join(import.meta.dirname, 'profile-summary.ts'),
        file,
        '--callers',
        'writev',
      ]);
      expect(stdout).toContain('10 ms busy of 15 ms sampled (idle 5)');
      expect(stdout).toMatch(/3 +30\.0% +submit query\.js:151 < \(root\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
