/**
 * Sampled allocations of another Node process, collected objects included: what its garbage
 * collector has to clean up, by the stack that allocated it. `node --heap-prof` does not show
 * that (it keeps only what is still alive at exit). The process's inspector is opened with
 * SIGUSR1 (on 127.0.0.1:9229, which must be free), and V8's sampling heap profiler is driven
 * over it. The profile written is a `.heapprofile`: Chrome DevTools' Memory tab opens it.
 */
import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';

export interface AllocationSampling {
  /** Stops sampling and writes the profile to `file`. */
  stop(file: string): Promise<void>;
}

export async function sampleAllocations(pid: number, samplingInterval = 16_384): Promise<AllocationSampling> {
  process.kill(pid, 'SIGUSR1');
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let attempt = 0; targets.length === 0; attempt++) {
    if (attempt === 50) throw new Error(`the inspector of process ${pid} did not open on 127.0.0.1:9229`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    targets = await fetch('http://127.0.0.1:9229/json/list')
      .then((response) => response.json() as Promise<typeof targets>)
      .catch(() => []);
  }
  const socket = new WebSocket((targets[0] as { webSocketDebuggerUrl: string }).webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let lastId = 0;
  const answers = new Map<number, (result: unknown) => void>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) answers.get(message.id)?.(message.result);
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = ++lastId;
      answers.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call('HeapProfiler.enable');
  await call('HeapProfiler.startSampling', {
    samplingInterval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return {
    async stop(file) {
      const { profile } = (await call('HeapProfiler.stopSampling')) as { profile: unknown };
      writeFileSync(file, JSON.stringify(profile));
      socket.close();
    },
  };
}
