import mitt, { type Emitter } from 'mitt';
import type { ImageError, ImagePhase, ImageProgress } from '../domain/image.js';
import type { PoolNodeStatus } from '../domain/pool.js';
import type { VmState } from '../domain/vm.js';

/**
 * Events inform; the database holds the truth. A listener that missed an event reads the row.
 * One bus per Quantix instance: two instances in a process never see each other's events.
 */
export type QuantixEvents = {
  'image.progress': {
    imageId: string;
    progress: ImageProgress;
    bytesPerSecond: number | null;
    etaSeconds: number | null;
  };
  'image.phase': { imageId: string; from: ImagePhase | null; to: ImagePhase; error: ImageError | null };
  /** An image's record was changed by a user (name, labels, requirements) or is gone: read it again. */
  'image.changed': { imageId: string; deleted: boolean };
  'pool.state': { poolId: string; nodeId: string; status: PoolNodeStatus; reason: string | null };
  'pool.synced': { nodeId: string; generation: number };
  'node.connected': { nodeId: string };
  'node.disconnected': { nodeId: string; reason: string | null };
  'vm.state': { vmId: string; from: VmState | null; to: VmState };
};

export type EventBus = Emitter<QuantixEvents>;

export function createEventBus(): EventBus {
  return mitt<QuantixEvents>();
}
