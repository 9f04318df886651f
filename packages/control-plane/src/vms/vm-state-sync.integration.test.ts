/**
 * VMs' records kept to what their nodes' hypervisors say (VmService.syncStates, which the control
 * plane runs every `vmStateSeconds`): a real NodeAgent driving libvirt's built-in test hypervisor
 * (`test:///default`, no daemon: its one domain `test` runs at first, and one kept-open virsh keeps
 * what each command does to it), joined to the hub by the in-process pipe that stands in for the
 * WebSocket (__fixtures__/in-process-node.ts), and the records in PostgreSQL or PGlite.
 */
import {
  type ControlMessage,
  createQuantix,
  LocalCommandRunner,
  type Quantix,
  type QuantixEvents,
  type Vm,
  type VmState,
} from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import { LibvirtHypervisor, NodeAgent } from '@quantix/node-runtime';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type InProcessLink, inProcessLink } from '../__fixtures__/in-process-node.js';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';

/** A node agent of protocol 4, the last before vm.states: what a node not upgraded yet says in its hello. */
class Protocol4Agent extends NodeAgent {
  override hello(options: { hostname: string; agentVersion: string }) {
    return { ...super.hello(options), v: 4, protocol: { min: 1, max: 4 } };
  }
}

describe.each(TEST_DATABASE_CLIENTS)('VM records follow the hypervisor, on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;
  const links: InProcessLink[] = [];
  const hypervisors: LibvirtHypervisor[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config });
    // No periodic check: each test runs syncStates itself, when the state it asserts is in place.
    cp = createControlPlane({ quantix, vmStateSeconds: 0 });
    await cp.start();
  });

  afterAll(async () => {
    for (const link of links) link.close();
    await Promise.all(hypervisors.map((hypervisor) => hypervisor.close()));
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  /** A node whose agent drives its own test hypervisor, connected; what it was sent, in order. */
  const connectNode = async (hostname: string, Agent: typeof NodeAgent = NodeAgent) => {
    const { id: nodeId } = await quantix.repositories.nodes.create({ hostname });
    const hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: 'test:///default' });
    hypervisors.push(hypervisor);
    const link = inProcessLink();
    links.push(link);
    const sent: ControlMessage[] = [];
    const agent = new Agent({ nodeId, backends: [], poolTypes: [], hypervisor, send: (m) => link.send(m) });
    const handle = agent.handle.bind(agent);
    agent.handle = async (message) => {
      sent.push(typeof message === 'string' ? JSON.parse(message) : message);
      return handle(message);
    };
    link.connect(agent, cp.hub, nodeId);
    const until = Date.now() + 30_000;
    while (!cp.hub.isConnectedHere(nodeId)) {
      if (Date.now() > until) throw new Error(`node ${hostname} was not welcomed`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return { nodeId, hypervisor, sent };
  };

  /** A VM record on `nodeId` in `state`, as if Quantix had made it. */
  const recordVm = async (nodeId: string, name: string, state: VmState, error: string | null = null): Promise<Vm> => {
    const vm = await quantix.repositories.vms.create({ name, nodeId });
    return quantix.repositories.vms.update(vm.id, { state, error });
  };

  const current = async (vm: Vm) => quantix.repositories.vms.require(vm.id);

  it('takes each settled VM’s state from its domain, marks a VM whose domain is gone, and leaves the rest', async () => {
    const { nodeId, hypervisor, sent } = await connectNode(`sync-${client}`);
    // The domain runs; its record says stopped (it was started outside Quantix).
    const startedOutside = await recordVm(nodeId, 'test', 'stopped');
    const removedOutside = await recordVm(nodeId, `gone-${client}`, 'running');
    const beingCreated = await recordVm(nodeId, `new-${client}`, 'creating');
    const failedBefore = await recordVm(nodeId, `failed-${client}`, 'error', 'create failed: no space left');
    const seen: QuantixEvents['vm.state'][] = [];
    const onState = (event: QuantixEvents['vm.state']) => void seen.push(event);
    quantix.events.on('vm.state', onState);
    try {
      const changed = await cp.vms.syncStates();
      expect(changed.map((vm) => vm.id).sort()).toEqual([startedOutside.id, removedOutside.id].sort());
      expect(await current(startedOutside)).toMatchObject({ state: 'running', error: null });
      expect(await current(removedOutside)).toMatchObject({
        state: 'error',
        error: expect.stringContaining(`has no domain named gone-${client}`),
      });
      // Being created: left to the creation. In error with no domain: nothing new to say.
      expect(await current(beingCreated)).toMatchObject({ state: 'creating' });
      expect(await current(failedBefore)).toMatchObject({ state: 'error', error: 'create failed: no space left' });
      expect(seen).toEqual(
        expect.arrayContaining([
          { vmId: startedOutside.id, from: 'stopped', to: 'running' },
          { vmId: removedOutside.id, from: 'running', to: 'error' },
        ]),
      );
      expect(seen).toHaveLength(2);
      // One request for the node's settled VMs; the one being created is not asked about.
      const asked = sent.flatMap((m) => (m.type === 'request' && m.request.op === 'vm.states' ? [m.request] : []));
      expect(asked).toHaveLength(1);
      expect(asked[0]?.op === 'vm.states' && [...asked[0].names].sort()).toEqual(
        [`failed-${client}`, `gone-${client}`, 'test'].sort(),
      );

      // The guest powers off (here: the domain is destroyed on the node, not through Quantix).
      await hypervisor.destroy({ name: 'test' });
      expect((await cp.vms.syncStates()).map((vm) => vm.id)).toEqual([startedOutside.id]);
      expect(await current(startedOutside)).toMatchObject({ state: 'stopped' });
      // Nothing changed since: nothing is written.
      const version = (await current(startedOutside)).version;
      expect(await cp.vms.syncStates()).toEqual([]);
      expect((await current(startedOutside)).version).toBe(version);
    } finally {
      quantix.events.off('vm.state', onState);
    }
  });

  it('leaves the VMs of a node that speaks protocol 4 as they are, without asking it', async () => {
    const { nodeId, sent } = await connectNode(`old-${client}`, Protocol4Agent);
    const vm = await recordVm(nodeId, `old-vm-${client}`, 'stopped');
    expect(await cp.vms.syncStates()).toEqual([]);
    expect(await current(vm)).toMatchObject({ state: 'stopped', version: vm.version });
    expect(sent.filter((m) => m.type === 'request')).toEqual([]);
  });

  it('leaves the VMs of a node that is not connected as they are', async () => {
    const { id: nodeId } = await quantix.repositories.nodes.create({ hostname: `away-${client}` });
    const vm = await recordVm(nodeId, `away-vm-${client}`, 'running');
    expect(await cp.vms.syncStates()).toEqual([]);
    expect(await current(vm)).toMatchObject({ state: 'running', version: vm.version });
  });
});

describe.each(TEST_DATABASE_CLIENTS)('VM records checked when their node connects, on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;
  let hypervisor: LibvirtHypervisor | undefined;
  let link = inProcessLink();

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config });
    // The periodic check runs once at the start (no VMs yet), then not for an hour: what the
    // records learn after a reconnect, they learn from the check on connect.
    cp = createControlPlane({ quantix, vmStateSeconds: 3600 });
    await cp.start();
  });

  afterAll(async () => {
    link.close();
    await hypervisor?.close();
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  it('brings the VMs of a node that (re)connects to their domains’ states without waiting for the period', async () => {
    const { id: nodeId } = await quantix.repositories.nodes.create({ hostname: `rejoin-${client}` });
    hypervisor = new LibvirtHypervisor({ runner: new LocalCommandRunner(), uri: 'test:///default' });
    const agent = new NodeAgent({ nodeId, backends: [], poolTypes: [], hypervisor, send: (m) => link.send(m) });
    // Recorded while the node was away: the domain `test` runs, yet its record says stopped.
    const test = await quantix.repositories.vms.create({ name: 'test', nodeId });
    await quantix.repositories.vms.update(test.id, { state: 'stopped' });
    const stateOf = async () => (await quantix.repositories.vms.require(test.id)).state;

    link.connect(agent, cp.hub, nodeId);
    await vi.waitFor(async () => expect(await stateOf()).toBe('running'), { timeout: 15_000, interval: 50 });

    // The node goes away; meanwhile its guest powers off. It comes back: the record follows.
    link.close();
    await vi.waitFor(() => expect(cp.hub.isConnectedHere(nodeId)).toBe(false), { timeout: 15_000 });
    await hypervisor.destroy({ name: 'test' });
    expect(await stateOf()).toBe('running');
    link = inProcessLink();
    link.connect(agent, cp.hub, nodeId);
    await vi.waitFor(async () => expect(await stateOf()).toBe('stopped'), { timeout: 15_000, interval: 50 });
  });
});
