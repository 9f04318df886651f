import {
  type DomainState,
  type DomainStateReason,
  ErrorCode,
  type EventBus,
  generateMac,
  type HostInfo,
  type HostNetwork,
  type Image,
  isQuantixError,
  type Node,
  nicRequestSchema,
  type OsDatabase,
  type OsResources,
  PROTOCOL_LIMITS,
  parseOrThrow,
  QuantixError,
  type Repositories,
  type Vm,
  type VmAddress,
  type VmNic,
  type VmSpec,
  vmFileRelPath,
  vmNameSchema,
} from '@quantix/core';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ControlPlaneErrorCode } from '../errors.js';
import type { NodeHub } from '../hub/node-hub.js';
import { pathOnNode } from '../images/available.js';
import { checkBootable, checkImageRequirements, checkVmImage, checkVmNetworks, minDiskGiBOf } from './preflight.js';

const STATE_OF_DOMAIN: Partial<Record<DomainState, Vm['state']>> = {
  running: 'running',
  blocked: 'running',
  paused: 'paused',
  pmsuspended: 'paused',
  shutdown: 'running', // still shutting down
  shutoff: 'stopped',
  crashed: 'error',
};

/** What a VM's record says when the hypervisor says why its domain is in its state. */
const WHY: Record<DomainStateReason, string> = {
  ioerror:
    'paused by QEMU: a disk could not be written (is its pool full?); make room, then start the VM to let it run on',
  watchdog: 'paused by its watchdog: the guest stopped answering it',
  crashed: 'the guest crashed and was powered off',
  panicked: "the guest's kernel panicked",
};

/** Default of CreateControlPlaneOptions.vmStopTimeoutSeconds. */
export const DEFAULT_VM_STOP_TIMEOUT_SECONDS = 60;
/** How often a stopping guest's state is asked while it shuts down. */
const STOP_POLL_MS = 500;

export interface VmStopOptions {
  /** Power the VM off if it has not shut down by the end of the timeout (at once, by default). */
  force?: boolean;
  /** How long the guest gets to power off after the ACPI shutdown (default: the service's, 60 s; 0 with force). */
  timeoutSeconds?: number;
}

/** A disk or CD-ROM of a VM with where its file is on the VM's node (null while its pool is not active there). */
export type VmMediaOnNode<T> = T & { path: string | null };

/**
 * What `show` answers: the VM record, each disk and CD-ROM with its path on the node, and whether
 * the node is connected now. NICs, addresses and a console URL are not part of a VM yet.
 */
export interface VmDetail extends Omit<Vm, 'disks' | 'cdroms'> {
  disks: VmMediaOnNode<Vm['disks'][number]>[];
  cdroms: VmMediaOnNode<Vm['cdroms'][number]>[];
  nodeConnected: boolean;
}

/** Sizes used when neither the request nor the OS database says (an OS osinfo-db does not know). */
const FALLBACK_SIZES = { cpu: 1, memoryMiB: 1024, diskGiB: 10 } as const;

/** What a new VM of an image gets when the request leaves sizes out, and the OS facts they come from. */
export interface VmDefaults {
  cpu: number;
  memoryMiB: number;
  diskGiB: number;
  /** The image's firmware when it needs one (its requirements), else bios. */
  firmware: 'bios' | 'uefi';
  /** osinfo-db's minimum and recommended resources for the image's OS; null when it does not know the OS. */
  os: OsResources | null;
}

/** The most a VM can be given (created or resized): what an image may require at most too. */
export const VM_LIMITS = { cpu: 256, memoryMiB: 1024 * 1024, diskGiB: 65_536 } as const;

/** The vCPUs and memory a VM can be given (created or resized). */
const vmCpuSchema = z.number().int().min(1).max(VM_LIMITS.cpu);
const vmMemorySchema = z.number().int().min(64).max(VM_LIMITS.memoryMiB);

export const createVmSchema = z.strictObject({
  name: vmNameSchema,
  nodeId: z.string().min(1),
  imageId: z.string().min(1),
  cpu: vmCpuSchema.optional().describe('default: the OS’s recommended CPUs (osinfo-db), else 1'),
  memoryMiB: vmMemorySchema.optional().describe('default: the OS’s recommended memory (osinfo-db), else 1024'),
  diskGiB: z
    .number()
    .int()
    .min(1)
    .max(VM_LIMITS.diskGiB)
    .optional()
    .describe('default: the OS’s recommended storage (osinfo-db), else 10'),
  firmware: z.enum(['bios', 'uefi']).optional().describe('default: the firmware the image needs, else bios'),
  /** Pool for the VM's own disk; default: the image's pool when it can hold images. */
  diskPoolId: z.string().min(1).optional(),
  /** The user cloud-init creates for the SSH keys; the image's default user when null. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Linux user name: lower-case letters, digits, _ and -, at most 32')
    .nullable()
    .default(null),
  sshAuthorizedKeys: z.array(z.string().max(16_384)).max(32).default([]),
  /**
   * Its NICs, in order (eth0 first): each a libvirt network of the node (`default`: NAT) or a host
   * bridge, virtio, with a MAC generated in 52:54:00:xx:xx:xx unless one is given. None: no network.
   */
  networks: z.array(nicRequestSchema).max(16).default([]),
});
export type CreateVmInput = z.input<typeof createVmSchema>;

/** A stopped VM's new vCPUs and memory: either or both; what is left out stays. */
export const resizeVmSchema = z
  .strictObject({
    cpu: vmCpuSchema.optional().describe('its vCPUs from its next start'),
    memoryMiB: vmMemorySchema.optional().describe('its memory from its next start'),
  })
  .refine((asked) => asked.cpu !== undefined || asked.memoryMiB !== undefined, 'give cpu, memoryMiB or both');
export type ResizeVmInput = z.input<typeof resizeVmSchema>;

/** Whether the node said it can run VMs, and this one fits in its host (CPUs, memory). */
function checkNodeCanRun(node: Node, request: { cpu: number; memoryMiB: number }): void {
  const capabilities = node.capabilities as { vms?: unknown; hypervisorProblem?: unknown; host?: unknown };
  if (capabilities.vms === false) {
    const why = typeof capabilities.hypervisorProblem === 'string' ? `: ${capabilities.hypervisorProblem}` : '';
    throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, `Node ${node.id} runs no hypervisor${why}`, {
      details: { nodeId: node.id },
    });
  }
  const host = capabilities.host as Partial<HostInfo> | null | undefined;
  const asked = { cpu: request.cpu, memoryMiB: request.memoryMiB };
  if (typeof host?.memoryMiB === 'number' && request.memoryMiB > host.memoryMiB) {
    throw new QuantixError(
      ErrorCode.INSUFFICIENT_CAPACITY,
      `Node ${node.id} has ${host.memoryMiB} MiB of memory; a VM of ${request.memoryMiB} MiB cannot run there`,
      { details: { nodeId: node.id, asked, host } },
    );
  }
  if (typeof host?.cpus === 'number' && request.cpu > host.cpus) {
    throw new QuantixError(
      ErrorCode.INSUFFICIENT_CAPACITY,
      `Node ${node.id} has ${host.cpus} CPUs; a VM with ${request.cpu} cannot run there`,
      { details: { nodeId: node.id, asked, host } },
    );
  }
}

/** A VM being created or deleted is changed by nothing else (VM_BUSY): `what` is the change refused. */
function refuseBusy(vm: Vm, what: string): void {
  if (vm.state === 'creating' || vm.state === 'deleting') {
    throw new QuantixError(ControlPlaneErrorCode.VM_BUSY, `VM ${vm.name} is ${vm.state}; ${what} after that`, {
      details: { vmId: vm.id, state: vm.state },
    });
  }
}

/**
 * VM lifecycle from the control plane. Creation checks everything before any hypervisor is
 * touched (node connected; image exists, ready, located, its pool active on the node, the file
 * there — each failure its own code), records the VM, then asks the node to build and start it.
 */
export class VmService {
  constructor(
    private readonly options: {
      repositories: Repositories;
      hub: NodeHub;
      events: EventBus;
      logger: Logger;
      /** osinfo-db's resources per OS, for the sizes a request leaves out; without it, fixed fallbacks. */
      osDatabase?: OsDatabase | undefined;
      /** How long a stop without a timeout of its own waits for the guest (default 60 s). */
      stopTimeoutSeconds?: number | undefined;
    },
  ) {}

  /**
   * The sizes a VM of this image gets when the request leaves them out: osinfo-db's recommended
   * resources for the image's OS, else its minimum, never below the image's own requirements
   * (nor, for a disk made from the image, below its virtual size); its firmware when it needs one.
   */
  async defaultsFor(imageId: string): Promise<VmDefaults> {
    return this.defaultsOf(await this.options.repositories.images.require(imageId));
  }

  private async defaultsOf(image: Image | undefined): Promise<VmDefaults> {
    const os =
      image && this.options.osDatabase
        ? await this.options.osDatabase.resourcesFor(image.os).catch((error: unknown) => {
            // Defaults are a convenience: an unreadable database costs them, not the VM.
            this.options.logger.warn({ err: String(error) }, 'osinfo-db could not be read for VM defaults');
            return null;
          })
        : null;
    const pick = (key: 'cpus' | 'memoryMiB' | 'diskGiB') => os?.recommended?.[key] ?? os?.minimum?.[key] ?? null;
    const needs = image?.requirements;
    return {
      cpu: Math.max(pick('cpus') ?? FALLBACK_SIZES.cpu, needs?.minCpu ?? 1),
      memoryMiB: Math.max(pick('memoryMiB') ?? FALLBACK_SIZES.memoryMiB, needs?.minMemoryMiB ?? 0),
      diskGiB: Math.max(pick('diskGiB') ?? FALLBACK_SIZES.diskGiB, image ? minDiskGiBOf(image) : 1),
      firmware: needs && needs.firmware !== 'any' ? needs.firmware : 'bios',
      os,
    };
  }

  async create(input: CreateVmInput): Promise<Vm> {
    const { repositories, hub, events } = this.options;
    const asked = createVmSchema.parse(input);
    const node = await repositories.nodes.require(asked.nodeId);
    const defaults = await this.defaultsOf(await repositories.images.get(asked.imageId));
    // A default never asks for more than the node has; a size the request gives is checked as given.
    const host = (node.capabilities as { host?: Partial<HostInfo> | null }).host;
    const fit = (value: number, limit: unknown) => (typeof limit === 'number' ? Math.min(value, limit) : value);
    const request = {
      ...asked,
      cpu: asked.cpu ?? fit(defaults.cpu, host?.cpus),
      memoryMiB: asked.memoryMiB ?? fit(defaults.memoryMiB, host?.memoryMiB),
      diskGiB: asked.diskGiB ?? defaults.diskGiB,
      firmware: asked.firmware ?? defaults.firmware,
    };
    if (await repositories.vms.getByName(request.name)) {
      throw new QuantixError(ErrorCode.ALREADY_EXISTS, `A VM named ${request.name} already exists; pick another name`);
    }
    await hub.requireConnected(request.nodeId);
    // What the node said in its hello: refused here, before any row is written or the node asked.
    checkNodeCanRun(await repositories.nodes.require(request.nodeId), request);
    const { image } = await checkVmImage({
      repositories,
      imageId: request.imageId,
      nodeId: request.nodeId,
      fileExists: this.fileOnNode(request.nodeId),
    });
    checkBootable(image);
    checkImageRequirements(image, request);
    if (request.networks.length > 0) {
      checkVmNetworks({
        nodeId: request.nodeId,
        requested: request.networks,
        offered: await this.networks(request.nodeId),
      });
    }
    const nics = await this.assignMacs(request.networks);
    const imageLocation = image.location as NonNullable<Image['location']>;
    const diskPoolId = request.diskPoolId ?? (await this.diskPoolFor(imageLocation.poolId, request.nodeId));
    const disk = { poolId: diskPoolId, relPath: vmFileRelPath(request.name, 'disk.qcow2'), sizeGiB: request.diskGiB };
    const boot: VmSpec['boot'] =
      image.kind === 'cloud'
        ? {
            kind: 'cloud',
            image: imageLocation,
            disk,
            seed: { poolId: diskPoolId, relPath: vmFileRelPath(request.name, 'seed.iso') },
            cloudInit: {
              hostname: request.name.replace(/[._]/g, '-').slice(0, 63),
              user: request.user ?? image.os.defaultUser,
              sshAuthorizedKeys: request.sshAuthorizedKeys,
            },
          }
        : { kind: 'iso', iso: imageLocation, disk };
    const vm = await repositories.vms.create({
      name: request.name,
      nodeId: request.nodeId,
      cpu: request.cpu,
      memoryMiB: request.memoryMiB,
      firmware: request.firmware,
      disks: [
        {
          imageId: image.kind === 'cloud' ? image.id : null,
          poolId: disk.poolId,
          relPath: disk.relPath,
          sizeGiB: disk.sizeGiB,
        },
      ],
      cdroms: image.kind === 'iso' ? [{ imageId: image.id, ...imageLocation }] : [],
      nics,
      bootImageId: image.id,
    });
    const spec: VmSpec = {
      name: vm.name,
      cpu: vm.cpu,
      memoryMiB: vm.memoryMiB,
      firmware: request.firmware,
      ...(defaults.os ? { osinfoId: defaults.os.osId } : {}),
      boot,
      nics: vm.nics,
    };
    try {
      await hub.request(request.nodeId, { op: 'vm.create', vm: spec }, { timeoutMs: 180_000 });
    } catch (error) {
      await repositories.vms.update(vm.id, { state: 'error', error: (error as Error).message });
      throw error;
    }
    const running = await repositories.vms.update(vm.id, { state: 'running', error: null });
    events.emit('vm.state', { vmId: vm.id, from: 'creating', to: 'running' });
    return running;
  }

  /** The node's libvirt networks and host bridges: what a VM's NIC can plug into there. */
  async networks(nodeId: string): Promise<HostNetwork[]> {
    const { repositories, hub } = this.options;
    await repositories.nodes.require(nodeId);
    await hub.requireConnected(nodeId, 'so its networks cannot be read');
    return (await hub.request(nodeId, { op: 'node.networks' }, { timeoutMs: 30_000 })).networks;
  }

  /**
   * Where a VM can be reached now, asked of its node: libvirt's DHCP leases for NICs on its
   * networks, the guest agent for the others when the guest runs one. A stopped VM has none.
   */
  async addresses(id: string): Promise<{ vmId: string; addresses: VmAddress[] }> {
    const { repositories, hub } = this.options;
    const vm = await repositories.vms.require(id);
    if (vm.nics.length === 0 || vm.state === 'stopped' || vm.state === 'creating')
      return { vmId: vm.id, addresses: [] };
    await hub.requireConnected(vm.nodeId, `so the addresses of VM ${vm.name} cannot be read`, { vmId: vm.id });
    const result = await hub.request(vm.nodeId, { op: 'vm.addresses', name: vm.name }, { timeoutMs: 30_000 });
    return { vmId: vm.id, addresses: result.addresses };
  }

  async start(id: string): Promise<Vm> {
    return this.transition(id, { op: 'vm.start' }, 'running');
  }

  /**
   * Stops a VM the way a person would: an ACPI shutdown, then up to `timeoutSeconds` for the
   * guest to power itself off; if it has not by then, `force` powers it off, and without `force`
   * the stop fails with VM_DID_NOT_STOP (the VM is recorded as the hypervisor says: running).
   * `timeoutSeconds` defaults to the service's (60 s), or to 0 with `force` (power off at once, no ACPI).
   */
  async stop(id: string, options: VmStopOptions = {}): Promise<Vm> {
    const force = options.force ?? false;
    const defaultSeconds = force ? 0 : (this.options.stopTimeoutSeconds ?? DEFAULT_VM_STOP_TIMEOUT_SECONDS);
    const timeoutMs = (options.timeoutSeconds ?? defaultSeconds) * 1000;
    if (timeoutMs === 0) return this.transition(id, { op: 'vm.stop', force }, 'stopped');
    const { repositories, hub } = this.options;
    const vm = await repositories.vms.require(id);
    let state = (await hub.request(vm.nodeId, { op: 'vm.stop', name: vm.name, force: false }, { timeoutMs: 120_000 }))
      .state;
    const deadline = Date.now() + timeoutMs;
    while (STATE_OF_DOMAIN[state] === 'running' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(STOP_POLL_MS, Math.max(0, deadline - Date.now()))));
      state = (await hub.request(vm.nodeId, { op: 'vm.state', name: vm.name }, { timeoutMs: 30_000 })).state;
    }
    if (STATE_OF_DOMAIN[state] !== 'running') return this.record(vm, STATE_OF_DOMAIN[state] ?? 'stopped');
    if (force) return this.transition(id, { op: 'vm.stop', force: true }, 'stopped');
    await this.record(vm, 'running');
    throw new QuantixError(
      ErrorCode.VM_DID_NOT_STOP,
      `VM ${vm.name} is still running ${timeoutMs / 1000} s after the ACPI shutdown: the guest did not power off (it may ignore ACPI); stop it with force to power it off`,
      { details: { vmId: vm.id, timeoutSeconds: timeoutMs / 1000 } },
    );
  }

  /**
   * Brings the records of VMs to what their nodes' hypervisors say now: a guest that powered itself
   * off, a domain stopped, started or removed outside Quantix. One vm.states request per
   * connected node with VMs (a node of protocol 4 or older is left as it is); VMs being created or
   * deleted are left to that. A record that changed while its node was asked (an operation recorded
   * its own outcome) is left as it is too: the node's answer may be older than it. `nodeIds`: only
   * the VMs of these nodes (those that have just connected, say). Returns the VMs whose record changed.
   */
  async syncStates(options: { nodeIds?: readonly string[] } = {}): Promise<Vm[]> {
    const { repositories, hub, logger } = this.options;
    const settled = await repositories.vms.list({
      state: ['running', 'paused', 'stopped', 'error'],
      ...(options.nodeIds === undefined ? {} : { nodeId: options.nodeIds }),
    });
    const byNode = new Map<string, Vm[]>();
    for (const vm of settled) {
      if (!hub.isConnected(vm.nodeId)) continue;
      const list = byNode.get(vm.nodeId);
      if (list) list.push(vm);
      else byNode.set(vm.nodeId, [vm]);
    }
    const changed: Vm[] = [];
    await Promise.all(
      [...byNode].map(async ([nodeId, vms]) => {
        for (let i = 0; i < vms.length; i += PROTOCOL_LIMITS.vmsPerRequest) {
          const chunk = vms.slice(i, i + PROTOCOL_LIMITS.vmsPerRequest);
          let states: { name: string; state: DomainState | null; reason?: DomainStateReason | undefined }[];
          try {
            ({ states } = await hub.request(
              nodeId,
              { op: 'vm.states', names: chunk.map((vm) => vm.name) },
              { timeoutMs: 30_000 },
            ));
          } catch (error) {
            if (!isQuantixError(error, ErrorCode.UNSUPPORTED_OPERATION)) {
              logger.warn({ nodeId, err: error }, 'the states of the VMs of a node could not be read');
            }
            return;
          }
          const stateOf = new Map(states.map((item) => [item.name, item]));
          for (const vm of chunk) {
            const domain = stateOf.get(vm.name);
            // A name the answer leaves out says nothing (only a null state says "no such domain").
            if (!domain) continue;
            const { state, reason } = domain;
            const updated = await this.syncState(vm, state === null ? null : { state, reason });
            if (updated) changed.push(updated);
          }
        }
      }),
    );
    return changed;
  }

  /** One VM's record brought to its domain's state (null: the node has no such domain); the record if it changed. */
  private async syncState(
    vm: Vm,
    domain: { state: DomainState; reason?: DomainStateReason | undefined } | null,
  ): Promise<Vm | null> {
    const { logger } = this.options;
    const to = domain === null ? 'error' : STATE_OF_DOMAIN[domain.state];
    // A state with no VM state of its own (unknown, no state) says nothing.
    if (to === undefined) return null;
    const why = domain?.reason ? WHY[domain.reason] : undefined;
    // Same state: nothing to write, unless the hypervisor says why and the record does not say so
    // yet (an error recorded before stays until the domain says more).
    if (to === vm.state && (why === undefined || why === vm.error)) return null;
    const error =
      domain === null
        ? `node ${vm.nodeId} has no domain named ${vm.name}: it was removed outside Quantix`
        : (why ?? null);
    try {
      const updated = await this.record(vm, to, { error, expectedVersion: vm.version });
      logger.info(
        { vmId: vm.id, name: vm.name, from: vm.state, to, reason: domain?.reason },
        'VM state taken from its node',
      );
      return updated;
    } catch (error) {
      if (isQuantixError(error, ErrorCode.VERSION_CONFLICT) || isQuantixError(error, ErrorCode.NOT_FOUND)) return null;
      throw error;
    }
  }

  /** An ACPI reboot: the guest restarts itself. A VM that is not running is refused (INVALID_STATE). */
  async reboot(id: string): Promise<Vm> {
    const { repositories, hub } = this.options;
    const vm = await repositories.vms.require(id);
    const result = await hub.request(vm.nodeId, { op: 'vm.reboot', name: vm.name }, { timeoutMs: 120_000 });
    return this.record(vm, STATE_OF_DOMAIN[result.state] ?? 'running');
  }

  /**
   * Takes the VM's ISOs out of its CD-ROM drives (an installer's, once the OS is on the disk):
   * on its node, live when it runs and in its definition; the drives stay, empty, so it boots from
   * its disk. The record then lists no CD-ROM, and no longer boots from an ISO it held: the ISO
   * can be deleted. A VM with none is left as it is. A VM being created or deleted is refused
   * (VM_BUSY), as is a node of protocol 5 or older (UNSUPPORTED_OPERATION).
   */
  async eject(id: string): Promise<Vm> {
    const { repositories, hub, logger } = this.options;
    const vm = await repositories.vms.require(id);
    if (vm.cdroms.length === 0) return vm;
    refuseBusy(vm, 'eject its CD-ROMs');
    await hub.requireConnected(vm.nodeId, `so the CD-ROMs of VM ${vm.name} cannot be ejected`, { vmId: vm.id });
    const cdroms = vm.cdroms.map(({ poolId, relPath }) => ({ poolId, relPath }));
    const result = await hub.request(vm.nodeId, { op: 'vm.eject', name: vm.name, cdroms }, { timeoutMs: 60_000 });
    // The ISO it booted from is out (a disk made from its boot image would still be that image's).
    const bootImageEjected =
      vm.bootImageId !== null &&
      vm.cdroms.some((cdrom) => cdrom.imageId === vm.bootImageId) &&
      !vm.disks.some((disk) => disk.imageId === vm.bootImageId);
    const updated = await repositories.vms.update(vm.id, {
      cdroms: [],
      ...(bootImageEjected ? { bootImageId: null } : {}),
    });
    logger.info({ vmId: vm.id, name: vm.name, drives: result.ejected }, 'VM CD-ROMs ejected');
    return updated;
  }

  /**
   * Gives a stopped VM other vCPUs or memory (either or both), from its next start: set in its
   * domain's definition on its node, then in its record. Refused below what the image it was made
   * from needs (BELOW_IMAGE_REQUIREMENTS, as a creation is), when its node could not run it
   * (INSUFFICIENT_CAPACITY, as a creation is), while it runs (the node's INVALID_STATE: stop it
   * first), while it is being created or deleted (VM_BUSY), and by a node of protocol 6 or older
   * (UNSUPPORTED_OPERATION).
   */
  async resize(id: string, input: ResizeVmInput): Promise<Vm> {
    const { repositories, hub, logger } = this.options;
    const asked = parseOrThrow(resizeVmSchema, input, 'VM resize');
    const vm = await repositories.vms.require(id);
    refuseBusy(vm, 'resize it');
    const wanted = { cpu: asked.cpu ?? vm.cpu, memoryMiB: asked.memoryMiB ?? vm.memoryMiB };
    // What it was made from still needs what it needed (an image since deleted: nothing to check).
    const madeFrom = vm.bootImageId ? await repositories.images.get(vm.bootImageId) : undefined;
    if (madeFrom) checkImageRequirements(madeFrom, asked);
    await hub.requireConnected(vm.nodeId, `so VM ${vm.name} cannot be resized`, { vmId: vm.id });
    checkNodeCanRun(await repositories.nodes.require(vm.nodeId), wanted);
    const result = await hub.request(vm.nodeId, { op: 'vm.resize', name: vm.name, ...asked }, { timeoutMs: 60_000 });
    // What the node's definition says now, whatever the record said before.
    const updated = await repositories.vms.update(vm.id, { cpu: result.cpu, memoryMiB: result.memoryMiB });
    logger.info(
      { vmId: vm.id, name: vm.name, from: { cpu: vm.cpu, memoryMiB: vm.memoryMiB }, to: wanted },
      'VM resized',
    );
    return updated;
  }

  /**
   * Puts an ISO into the VM's empty CD-ROM drive (drivers, a rescue system, its installer again),
   * running or stopped; the record lists it, so the ISO is in use until it is ejected. The ISO is
   * checked as for a VM's creation (ready, its pool active on the VM's node, its file there);
   * an image that is not an ISO is INVALID_INPUT. A VM with no empty drive (one made from a cloud
   * image holds its cloud-init seed in its only drive) is refused by its node (INVALID_STATE).
   * One that holds the ISO already is left as it is.
   */
  async insert(id: string, imageId: string): Promise<Vm> {
    const { repositories, hub, logger } = this.options;
    const vm = await repositories.vms.require(id);
    if (vm.cdroms.some((cdrom) => cdrom.imageId === imageId)) return vm;
    refuseBusy(vm, 'insert an ISO');
    await hub.requireConnected(vm.nodeId, `so no ISO can be inserted into VM ${vm.name}`, { vmId: vm.id });
    const { image } = await checkVmImage({
      repositories,
      imageId,
      nodeId: vm.nodeId,
      fileExists: this.fileOnNode(vm.nodeId),
      kind: { is: 'iso', why: 'only an ISO goes into a CD-ROM drive' },
    });
    const cdrom = image.location as NonNullable<Image['location']>;
    const result = await hub.request(vm.nodeId, { op: 'vm.insert', name: vm.name, cdrom }, { timeoutMs: 60_000 });
    const updated = await repositories.vms.update(vm.id, { cdroms: [...vm.cdroms, { imageId: image.id, ...cdrom }] });
    logger.info({ vmId: vm.id, name: vm.name, imageId, drive: result.target }, 'ISO inserted into a VM');
    return updated;
  }

  /** checkVmImage's fileExists for `nodeId`: the node asked whether that file of a pool is there. */
  private fileOnNode(nodeId: string) {
    return async (_path: string, location: { poolId: string; relPath: string }): Promise<boolean> => {
      const stat = await this.options.hub.request(nodeId, { op: 'file.stat', ...location }, { timeoutMs: 15_000 });
      return stat.exists;
    };
  }

  /** The VM by id, or else by name, with where its disks and CD-ROMs are on its node. */
  async show(idOrName: string): Promise<VmDetail> {
    const { repositories, hub } = this.options;
    // An id first (names may look like anything); the last lookup fails with the usual NOT_FOUND.
    const vm =
      (await repositories.vms.get(idOrName)) ??
      (await repositories.vms.getByName(idOrName)) ??
      (await repositories.vms.require(idOrName));
    const states = await repositories.pools.listNodeStates({ nodeId: vm.nodeId });
    const withPath = <T extends { poolId: string; relPath: string }>(item: T): VmMediaOnNode<T> => {
      const state = states.find((s) => s.poolId === item.poolId);
      const active = state?.status === 'active' && state.mountPath;
      return { ...item, path: active ? pathOnNode(state.mountPath as string, item.relPath) : null };
    };
    return {
      ...vm,
      disks: vm.disks.map(withPath),
      cdroms: vm.cdroms.map(withPath),
      nodeConnected: hub.isConnected(vm.nodeId),
    };
  }

  /**
   * Deletes the VM: its domain on the node (powered off first) and the files the node made for
   * it — overlay or empty disk, cloud-init seed — never the image it was made from.
   */
  async delete(id: string): Promise<void> {
    const { repositories, hub } = this.options;
    const vm = await repositories.vms.require(id);
    const deleting = await repositories.vms.update(id, { state: 'deleting' }, { expectedVersion: vm.version });
    try {
      await hub.request(vm.nodeId, { op: 'vm.delete', name: vm.name }, { timeoutMs: 120_000 });
    } catch (error) {
      if ((error as QuantixError).code !== ErrorCode.NOT_FOUND) {
        await repositories.vms.update(id, { state: 'error', error: `delete failed: ${(error as Error).message}` });
        throw error;
      }
    }
    await repositories.vms.delete(id, { expectedVersion: deleting.version });
  }

  private async transition(
    id: string,
    request: { op: 'vm.start' } | { op: 'vm.stop'; force: boolean },
    wanted: Vm['state'],
  ): Promise<Vm> {
    const { repositories, hub } = this.options;
    const vm = await repositories.vms.require(id);
    const result =
      request.op === 'vm.start'
        ? await hub.request(vm.nodeId, { op: 'vm.start', name: vm.name }, { timeoutMs: 120_000 })
        : await hub.request(vm.nodeId, { op: 'vm.stop', name: vm.name, force: request.force }, { timeoutMs: 120_000 });
    // Record what the hypervisor says, not what was asked: a guest may ignore an ACPI shutdown.
    return this.record(vm, STATE_OF_DOMAIN[result.state] ?? wanted);
  }

  /** Records `vm` in state `to` (its error cleared, unless one is given) and raises vm.state. */
  private async record(
    vm: Vm,
    to: Vm['state'],
    options: { error?: string | null; expectedVersion?: number } = {},
  ): Promise<Vm> {
    const { repositories, events } = this.options;
    const { error = null, expectedVersion } = options;
    const updated = await repositories.vms.update(vm.id, { state: to, error }, { expectedVersion });
    events.emit('vm.state', { vmId: vm.id, from: vm.state, to });
    return updated;
  }

  /**
   * The NICs with their MACs: a given MAC is kept (refused when another VM has it), the rest are
   * generated away from every MAC in use. The database's vm_macs key settles two creations racing.
   */
  private async assignMacs(requested: z.output<typeof nicRequestSchema>[]): Promise<VmNic[]> {
    if (requested.length === 0) return [];
    const { repositories } = this.options;
    const taken = new Set((await repositories.vms.list()).flatMap((vm) => vm.nics.map((nic) => nic.mac)));
    const nics: VmNic[] = [];
    for (const nic of requested) {
      if (nic.mac && taken.has(nic.mac)) {
        throw new QuantixError(
          ErrorCode.ALREADY_EXISTS,
          `MAC address ${nic.mac} is already in use by another NIC; leave it out to have one generated`,
          { details: { mac: nic.mac } },
        );
      }
      const mac = nic.mac ?? generateMac(taken);
      taken.add(mac);
      nics.push({ attachment: nic.attachment, source: nic.source, model: 'virtio', mac });
    }
    return nics;
  }

  private async diskPoolFor(imagePoolId: string, nodeId: string): Promise<string> {
    const { repositories } = this.options;
    const imagePool = await repositories.pools.require(imagePoolId);
    if (imagePool.contentTypes.includes('images')) return imagePool.id;
    for (const pool of await repositories.pools.list({ nodeId })) {
      const state = await repositories.pools.getNodeState(pool.id, nodeId);
      if (pool.contentTypes.includes('images') && state?.status === 'active') return pool.id;
    }
    throw new QuantixError(
      ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
      `Node ${nodeId} has no active pool for VM disks; give diskPoolId`,
    );
  }
}
