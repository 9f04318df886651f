import type { EventBus, QuantixEvents } from '@quantix/core';
import type { Logger } from 'pino';
import { Batcher } from '../hub/batcher.js';
import type { VmService } from './vm-service.js';

/** Least time between two checks of nodes that connected: a reconnect storm is checked in a few queries. */
const CHECK_SPACING_MS = 1_000;

/**
 * Checks the VMs of each node that connects against its hypervisor at once (VmService.syncStates),
 * not a period later: a node whose host rebooted comes back with its guests off, and a node that
 * was away missed what happened to its domains meanwhile. Nodes that connect together are checked
 * together: one query for their VMs, one vm.states request per node that has any.
 */
export class VmChecksOnConnect {
  private readonly batcher: Batcher<string, void>;
  private closed = false;

  constructor(private readonly options: { vms: VmService; events: EventBus; logger: Logger }) {
    this.batcher = new Batcher(
      async (nodeIds) => {
        if (!this.closed) {
          const changed = await options.vms.syncStates({ nodeIds });
          if (changed.length > 0) {
            options.logger.info({ vms: changed.map((vm) => vm.id) }, 'VM records taken from nodes that connected');
          }
        }
        return nodeIds.map(() => undefined);
      },
      1_000,
      CHECK_SPACING_MS,
    );
  }

  // Nothing else per node: a storm's checks wait up to CHECK_SPACING_MS, and what each one holds
  // meanwhile outlives a young-generation collection (close waits for the batcher instead).
  private readonly onConnected = ({ nodeId }: QuantixEvents['node.connected']) => {
    this.batcher.add(nodeId).catch((error: unknown) => {
      this.options.logger.warn({ nodeId, err: error }, 'the VMs of a node that connected could not be checked');
    });
  };

  start(): void {
    this.options.events.on('node.connected', this.onConnected);
  }

  /** No more checks; waits for those under way (call after the hub closed: their requests fail fast). */
  async close(): Promise<void> {
    this.closed = true;
    this.options.events.off('node.connected', this.onConnected);
    await this.batcher.idle();
  }
}
