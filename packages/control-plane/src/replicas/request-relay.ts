import { randomUUID } from 'node:crypto';
import { ErrorCode, isQuantixError, type NodeRequest, QuantixError, type QuantixErrorCode } from '@quantix/core';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { ControlPlaneErrorCode } from '../errors.js';
import { nodeNotConnected } from '../hub/node-hub.js';
import type { StartDownloadOptions } from '../images/downloads.js';
import type { ReplicaListener } from './listener.js';

const REQUEST_CHANNEL = 'quantix_node_request';
const RESULT_CHANNEL = 'quantix_node_result';
/** How long the holding replica has to take a request before it counts as unavailable. */
const DEFAULT_TAKE_TIMEOUT_MS = 3_000;
/** How often a requester waiting on a taken request checks that its holder still lives. */
const HOLDER_CHECK_MS = 2_000;

/**
 * Work for the replica holding a node that its control plane does rather than its node: a
 * download runs where the node's link is (its progress arrives there), so a download asked for
 * on another replica is started by the holder.
 */
export type ReplicaCall =
  | { op: 'replica.download.start'; options: StartDownloadOptions & { nodeId: string } }
  | { op: 'replica.download.retry'; imageId: string; nodeId: string };

export interface NodeRequestRelayOptions {
  knex: Knex;
  listener: ReplicaListener;
  replicaId: string;
  logger: Logger;
  /** The replica holding a node's connection now (the replica registry). */
  holderOf(nodeId: string): Promise<string | null>;
  /** Whether a replica is alive now (the replica registry). */
  isLive(replicaId: string): Promise<boolean>;
  /** Sends a request to a node whose link is on this replica (the hub, local links only), or does a replica call. */
  requestLocal(nodeId: string, request: NodeRequest | ReplicaCall, timeoutMs: number): Promise<unknown>;
  takeTimeoutMs?: number;
}

interface RequestRow {
  id: string;
  node_id: string;
  from_replica: string;
  request: NodeRequest | ReplicaCall;
  state: 'pending' | 'taken' | 'done';
  result: unknown;
  error: { code: string; message: string; details?: Record<string, unknown> } | null;
  deadline: Date | string;
}

/**
 * Requests for a node whose connection another replica holds: written to `node_requests`, the
 * holder told by a notification that carries only ids; it takes the row, asks its node, writes
 * the answer and tells the requester, which reads it. A table and notifications rather than
 * replica-to-replica HTTP: replicas need no addresses, ports or credentials for each other — the
 * database they already share is the only thing they talk through — and the row outlives a
 * notification missed while a listener reconnected.
 *
 * Never a hang: a holder that does not take the request within `takeTimeoutMs` (dead, or cut off
 * from the database) fails it with REPLICA_UNAVAILABLE (503); one that took it but whose node
 * did not answer in time, with COMMAND_TIMEOUT (504). A node's own error comes back unchanged.
 */
export class NodeRequestRelay {
  private readonly waiting = new Map<string, () => void>();

  constructor(private readonly options: NodeRequestRelayOptions) {
    options.listener.on(REQUEST_CHANNEL, (payload) => {
      const [to, id] = payload.split(':');
      if (to === options.replicaId && id) void this.serve(id);
    });
    options.listener.on(RESULT_CHANNEL, (payload) => {
      const [to, id] = payload.split(':');
      if (to === options.replicaId && id) this.waiting.get(id)?.();
    });
  }

  /** Whether requests can be carried at all: there are other replicas only on PostgreSQL. */
  get enabled(): boolean {
    return this.options.listener.shared;
  }

  async forward(nodeId: string, request: NodeRequest | ReplicaCall, timeoutMs: number): Promise<unknown> {
    const { knex, replicaId } = this.options;
    const holder = await this.options.holderOf(nodeId);
    if (holder === null || holder === replicaId) {
      throw nodeNotConnected(nodeId);
    }
    const id = randomUUID();
    const answered = new Promise<void>((resolve) => this.waiting.set(id, resolve));
    try {
      await knex('node_requests').insert({
        id,
        node_id: nodeId,
        from_replica: replicaId,
        to_replica: holder,
        request: JSON.stringify(request),
        deadline: new Date(Date.now() + timeoutMs),
      });
      await this.options.listener.notify(REQUEST_CHANNEL, `${holder}:${id}`);
      const takeMs = Math.min(timeoutMs, this.options.takeTimeoutMs ?? DEFAULT_TAKE_TIMEOUT_MS);
      const settled = await Promise.race([answered.then(() => 'answered' as const), sleep(takeMs)]);
      let row = await this.read(id);
      const deadline = Date.now() + timeoutMs - takeMs;
      let holderDied = false;
      // Taken: the node is being asked. Wait for the rest of the time — while the holder lives: a
      // holder that dies meanwhile never answers (a long request, such as an upload's transfer,
      // would otherwise wait out its whole deadline).
      while (settled !== 'answered' && row?.state === 'taken' && Date.now() < deadline) {
        const outcome = await Promise.race([
          answered.then(() => 'answered' as const),
          sleep(Math.min(HOLDER_CHECK_MS, deadline - Date.now())),
        ]);
        row = await this.read(id);
        if (outcome === 'answered' || row?.state !== 'taken') break;
        if (!(await this.options.isLive(holder))) {
          holderDied = true;
          break;
        }
      }
      if (holderDied) {
        throw new QuantixError(
          ControlPlaneErrorCode.REPLICA_UNAVAILABLE,
          `Replica ${holder}, which holds node ${nodeId}, stopped while the node was answering ${request.op}; the node moves to a live replica within its lease: retry`,
          { details: { nodeId, op: request.op, replica: holder } },
        );
      }
      if (row?.state === 'done') {
        if (row.error) {
          throw new QuantixError(row.error.code as QuantixErrorCode, row.error.message, {
            details: { ...row.error.details, replica: holder },
          });
        }
        return row.result;
      }
      if (row?.state === 'taken') {
        throw new QuantixError(
          ErrorCode.COMMAND_TIMEOUT,
          `Node ${nodeId} did not answer ${request.op} within ${timeoutMs} ms`,
          {
            details: { nodeId, op: request.op, replica: holder },
          },
        );
      }
      throw new QuantixError(
        ControlPlaneErrorCode.REPLICA_UNAVAILABLE,
        `Replica ${holder}, which holds node ${nodeId}, did not take the request within ${takeMs} ms; the node moves to a live replica within its lease: retry`,
        { details: { nodeId, op: request.op, replica: holder } },
      );
    } finally {
      this.waiting.delete(id);
      await knex('node_requests')
        .where({ id })
        .delete()
        .catch(() => undefined);
    }
  }

  private async read(id: string): Promise<RequestRow | undefined> {
    return (await this.options.knex('node_requests').where({ id }).first()) as RequestRow | undefined;
  }

  /** A request for one of this replica's nodes: take it (once), ask the node, write the answer. */
  private async serve(id: string): Promise<void> {
    const { knex, logger } = this.options;
    try {
      const [row] = (await knex('node_requests')
        .where({ id, state: 'pending', to_replica: this.options.replicaId })
        .update({ state: 'taken' })
        .returning('*')) as RequestRow[];
      if (!row) return;
      const remaining = new Date(row.deadline).getTime() - Date.now();
      let answer: { result: unknown } | { error: NonNullable<RequestRow['error']> };
      try {
        answer = { result: await this.options.requestLocal(row.node_id, row.request, Math.max(1, remaining)) };
      } catch (error) {
        answer = {
          error: isQuantixError(error)
            ? { code: error.code, message: error.message, details: error.details }
            : { code: ErrorCode.COMMAND_FAILED, message: (error as Error)?.message ?? String(error) },
        };
      }
      await knex('node_requests')
        .where({ id })
        .update({
          state: 'done',
          ...('result' in answer
            ? { result: JSON.stringify(answer.result ?? null) }
            : { error: JSON.stringify(answer.error) }),
        });
      await this.options.listener.notify(RESULT_CHANNEL, `${row.from_replica}:${id}`);
    } catch (error) {
      logger.warn({ err: error, request: id }, 'serving a request from another replica failed');
    }
  }
}

function sleep(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), Math.max(0, ms)).unref());
}
