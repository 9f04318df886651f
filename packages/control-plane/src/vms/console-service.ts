import type { Duplex } from 'node:stream';
import { type ConsoleType, ErrorCode, QuantixError, type Repositories } from '@quantix/core';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { NodeHub } from '../hub/node-hub.js';
import { RelaySessions } from '../hub/relays.js';
import { SingleUseTickets } from '../tokens.js';

/** A console ticket as issued: shown once; the holder opens the console with it once, before it expires. */
export interface ConsoleTicket {
  ticket: string;
  vmId: string;
  type: ConsoleType;
  expiresAt: Date;
}

export interface ConsoleServiceOptions {
  repositories: Repositories;
  /** Where tickets are kept, for every replica to redeem (the control plane's database). */
  knex: Knex;
  hub: NodeHub;
  logger: Logger;
  /** How long a ticket may wait to be used (default 60 s). */
  ticketTtlMs?: number;
  /** How long a node may take to open a console and dial its relay (default 15 s). */
  openTimeoutMs?: number;
}

/**
 * VM consoles (serial, VNC) for viewers that cannot send headers — browsers' WebSockets. An API
 * caller asks for a ticket (authenticated by its token); the viewer opens the console with it,
 * once, within ticketTtlMs. Opening asks the VM's node (console.open) to open the console and
 * dial back a relay socket of its own for this session; the caller then joins the viewer's
 * socket to it. Tickets are kept in the database, so the viewer may reach any replica; the
 * session lives in the memory of the replica it reached, and the node dials that replica
 * (NodeHub.requestDialBack), wherever its own link is.
 */
export class ConsoleService {
  private readonly tickets: SingleUseTickets<{ vmId: string; type: ConsoleType }>;
  private readonly relays = new RelaySessions<Duplex>();

  constructor(private readonly options: ConsoleServiceOptions) {
    this.tickets = new SingleUseTickets({
      knex: options.knex,
      purpose: 'console',
      ttlMs: options.ticketTtlMs ?? 60_000,
    });
  }

  /** A single-use ticket for the console of `type` of VM `vmId` (NOT_FOUND for an unknown VM). */
  async issueTicket(vmId: string, type: ConsoleType): Promise<ConsoleTicket> {
    await this.options.repositories.vms.require(vmId);
    return { ...(await this.tickets.issue({ vmId, type })), vmId, type };
  }

  /**
   * Uses up a ticket: true when it was issued for this VM and console type and has not expired.
   * Any ticket presented is spent, right or wrong, so none can be tried twice.
   */
  async redeemTicket(ticket: string, vmId: string, type: ConsoleType): Promise<boolean> {
    const grant = await this.tickets.redeem(ticket);
    return grant !== undefined && grant.vmId === vmId && grant.type === type;
  }

  /**
   * Opens the console of VM `vmId` on its node and gives the node's relay: bytes from the VM
   * (serial output, or RFB from its VNC server) to read, and bytes to it to write.
   */
  async open(vmId: string, type: ConsoleType): Promise<Duplex> {
    const { hub, repositories, logger } = this.options;
    const vm = await repositories.vms.require(vmId);
    await hub.requireDialBack(vm.nodeId, `so the console of ${vm.name} cannot be opened here`, { vmId });
    const timeoutMs = this.options.openTimeoutMs ?? 15_000;
    const channel = await this.relays.open(
      vm.nodeId,
      (sessionId) =>
        hub.requestDialBack(vm.nodeId, { op: 'console.open', sessionId, name: vm.name, type }, { timeoutMs }),
      {
        timeoutMs,
        timedOut: () =>
          new QuantixError(
            ErrorCode.CONSOLE_UNAVAILABLE,
            `Node ${vm.nodeId} did not open the ${type} console of ${vm.name} within ${timeoutMs} ms`,
          ),
      },
    );
    logger.info({ vmId, nodeId: vm.nodeId, type }, 'console opened');
    return channel;
  }

  /**
   * Takes a node's relay socket for a session it was asked to open. False (the caller closes the
   * socket) when no session of this node waits under that id.
   */
  attachRelay(nodeId: string, sessionId: string, channel: Duplex): boolean {
    return this.relays.attach(nodeId, sessionId, channel);
  }
}
