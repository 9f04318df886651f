import type { Logger } from 'pino';
import type { ReplicaListener } from './listener.js';

const CHANNEL = 'quantix_pool_changed';

export interface PoolFanoutOptions {
  listener: ReplicaListener;
  replicaId: string;
  logger: Logger;
  /** Pushes every node this replica holds its desired pool set again. */
  pushToOwnNodes: () => Promise<void>;
}

/**
 * A pool change reaches every node, whichever replica holds it: the replica that made the change
 * pushes its own nodes and notifies the others (`quantix_pool_changed`, payload
 * `replicaId:poolId`, delivered after the change committed); each of them pushes its own nodes
 * in turn. Each replica recomputes the sets from the database, so a lost or doubled notification
 * costs a push, never a wrong set; a replica that lost its listening connection pushes once when
 * listening again; and every (re)connect of a node pushes its full set anyway.
 */
export class PoolFanout {
  constructor(private readonly options: PoolFanoutOptions) {
    options.listener.on(
      CHANNEL,
      (payload) => {
        const [from, poolId] = payload.split(':');
        if (from === options.replicaId) return;
        options
          .pushToOwnNodes()
          .catch((error) => options.logger.warn({ err: error, poolId }, 'pushing a pool change failed'));
      },
      () => options.pushToOwnNodes(),
    );
  }

  /** After a pool was created, changed or deleted here. */
  async changed(poolId: string): Promise<void> {
    // The others first: their pushes run while this replica pushes its own.
    await this.options.listener.notify(CHANNEL, `${this.options.replicaId}:${poolId}`);
    await this.options.pushToOwnNodes();
  }
}
