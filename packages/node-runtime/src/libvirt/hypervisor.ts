import { isIP } from 'node:net';
import {
  type CommandRunner,
  type ConsoleStream,
  type ConsoleType,
  type DomainInfo,
  type DomainResources,
  type DomainState,
  type DomainStateReason,
  ErrorCode,
  type HostInfo,
  type HostNetwork,
  type Hypervisor,
  isQuantixError,
  type PluginContext,
  parseOrThrow,
  QuantixError,
  type QuantixErrorCode,
  type VmAddress,
  vmNameSchema,
} from '@quantix/core';
import { z } from 'zod';
import { NodeRuntimeErrorCode } from '../errors.js';
import { quoteArgv } from '../ssh/quote.js';
import { domainSpecSchema, hostPathSchema, parseDomainXml, serialLogPath } from './domain-xml.js';
import { parseBridgesJson, parseDomifaddr, parseNetworkXml } from './networks.js';
import { interactiveSpawner, VirshSession } from './virsh-session.js';

/** How much of a serial log a console replays before going live: a screenful or two of a chatty boot, not megabytes. */
const SERIAL_REPLAY_BYTES = 64 * 1024;

type Logger = PluginContext['logger'];

export const DEFAULT_LIBVIRT_URI = 'qemu:///system';
export const DEFAULT_VIRSH_TIMEOUT_MS = 60_000;

export interface LibvirtHypervisorOptions {
  /** Where virsh runs: a LocalCommandRunner on the node itself, or an SshCommandRunner to it. */
  runner: CommandRunner;
  /** libvirt connection URI as seen from where virsh runs. Default qemu:///system. */
  uri?: string;
  /** Bound on each virsh call. Default 60 s. */
  timeoutMs?: number;
  /**
   * Send virsh commands to one kept-open `virsh` session (VirshSession) when the runner can start
   * one (SshCommandRunner, core's LocalCommandRunner): a call then costs one round trip instead
   * of a process and a libvirt connection. Default true; false runs a virsh process per call.
   */
  session?: boolean;
  logger?: Logger;
}

const targetSchema = z.string().regex(/^(vd|sd|hd)[a-z]{1,2}$/, 'must be a device target such as vdb or sda');
const formatSchema = z.enum(['qcow2', 'raw']);

/** Makes a private temp file, writes its input into it and prints its path (removing it if the write fails). */
const WRITE_TEMP_XML =
  'file=$(mktemp --tmpdir quantix-domain-XXXXXXXX.xml) || exit 1\n' +
  'cat > "$file" || { rm -f -- "$file"; exit 1; }\n' +
  'printf \'%s\\n\' "$file"';

/** `virsh domstate` words → DomainState. */
const STATE_WORDS: Record<string, DomainState> = {
  'no state': 'unknown',
  running: 'running',
  idle: 'blocked',
  blocked: 'blocked',
  paused: 'paused',
  'in shutdown': 'shutdown',
  'shut off': 'shutoff',
  crashed: 'crashed',
  pmsuspended: 'pmsuspended',
};

/** virDomainState numbers (`virsh domstats --state`) → DomainState. */
const STATE_NUMBERS: DomainState[] = [
  'unknown',
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
];

/**
 * virDomain*Reason numbers (`state.reason` of `virsh domstats --state`) worth telling, per state:
 * VIR_DOMAIN_PAUSED_IOERROR 5 and _WATCHDOG 6, VIR_DOMAIN_SHUTOFF_CRASHED 3, VIR_DOMAIN_CRASHED_PANICKED 1.
 */
const REASON_NUMBERS: Partial<Record<DomainState, Record<number, DomainStateReason>>> = {
  paused: { 5: 'ioerror', 6: 'watchdog' },
  shutoff: { 3: 'crashed' },
  crashed: { 1: 'panicked' },
};

/** States in which a domain's disks are in use by a QEMU process. */
export const ACTIVE_STATES: readonly DomainState[] = ['running', 'blocked', 'paused', 'shutdown', 'pmsuspended'];

/**
 * libvirt through `virsh`, over any CommandRunner: the same code drives the local host or a
 * remote one over the persistent SSH connection. Commands go to one kept-open virsh session
 * (VirshSession, quoting by quoteVirshArg) when the runner can start one, else to a virsh
 * process per call. Only machine-readable forms are parsed
 * (`list --name --uuid`, `domstats`, `domuuid`, `domstate`, XML), never tables. Every name,
 * path and target is validated before it becomes an argument, and arguments never pass through
 * a shell string built from them (the runner or the session quotes each one).
 *
 * Errors map to QuantixError codes: no such domain → NOT_FOUND, a name taken → ALREADY_EXISTS,
 * an operation the domain's state forbids → INVALID_STATE, libvirtd unreachable →
 * HYPERVISOR_UNAVAILABLE, any other refusal → HYPERVISOR_ERROR. Runner failures that are not
 * virsh's own (timeouts, SSH) keep their codes.
 */
export class LibvirtHypervisor implements Hypervisor {
  readonly uri: string;
  readonly runner: CommandRunner;
  private readonly timeoutMs: number;
  private readonly logger: Logger | undefined;
  /** The kept-open virsh, or null when each call runs a virsh process (see the `session` option). */
  readonly session: VirshSession | null;
  /** Domain XML temp files being removed (define); close() waits for them. */
  private readonly removals = new Set<Promise<void>>();

  constructor(options: LibvirtHypervisorOptions) {
    this.runner = options.runner;
    this.uri = options.uri ?? DEFAULT_LIBVIRT_URI;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_VIRSH_TIMEOUT_MS;
    this.logger = options.logger;
    this.session =
      options.session !== false && interactiveSpawner(this.runner)
        ? new VirshSession({ runner: this.runner, uri: this.uri, logger: this.logger })
        : null;
  }

  /** Ends the kept-open virsh session, if any. The runner stays open (it is the caller's). */
  async close(): Promise<void> {
    await Promise.all(this.removals);
    await this.session?.close();
  }

  /** Defines (or, for the same name and UUID, redefines) a persistent domain from its XML. */
  async define({ xml }: { xml: string }): Promise<DomainInfo> {
    const { name } = parseDomainXml(xml);
    checkName(name);
    // virsh reads a file, and /dev/stdin cannot stand in for one: Node gives a local child a
    // socket as stdin, which open() refuses (ENXIO). So the XML goes through a private temp
    // file on the host (mktemp makes it 0600), made and written from stdin by one fixed script
    // (one round trip). It is removed once virsh has read it, off the caller's path (a round
    // trip of its own that nothing waits for, but close()).
    const file = checkPath((await this.run(['sh', '-c', WRITE_TEMP_XML], xml)).trim());
    try {
      await this.virsh(['define', '--validate', file], { name });
    } finally {
      const removal = this.run(['rm', '-f', '--', file]).then(
        () => undefined,
        (error: unknown) => this.logger?.warn({ file, err: error }, 'could not remove a domain XML temp file'),
      );
      this.removals.add(removal);
      void removal.finally(() => this.removals.delete(removal));
    }
    const [uuid, state] = await Promise.all([this.uuid(name), this.state({ name })]);
    return { name, uuid, state };
  }

  /** `virsh nodeinfo`: logical CPUs and memory of the host libvirt runs on (which may be remote). */
  async hostInfo(): Promise<HostInfo> {
    const text = await this.virsh(['nodeinfo']);
    const cpus = /^CPU\(s\):\s+(\d+)/m.exec(text)?.[1];
    const memoryKiB = /^Memory size:\s+(\d+)\s+KiB/m.exec(text)?.[1];
    if (!cpus || !memoryKiB) {
      throw new QuantixError(
        NodeRuntimeErrorCode.HYPERVISOR_ERROR,
        'virsh nodeinfo printed no CPU count or memory size',
        {
          details: { output: text.slice(0, 500) },
        },
      );
    }
    return { cpus: Number(cpus), memoryMiB: Math.floor(Number(memoryKiB) / 1024) };
  }

  /**
   * The libvirt networks (`net-list --name`, each read from `net-dumpxml`) and the host's
   * bridges (`ip -json addr show type bridge`), where a NIC can plug in. Bridges a libvirt
   * network manages are listed as that network only.
   */
  async networks(): Promise<HostNetwork[]> {
    const [all, active, bridgesJson] = await Promise.all([
      this.virsh(['net-list', '--all', '--name']),
      this.virsh(['net-list', '--name']),
      this.run(['ip', '-json', 'addr', 'show', 'type', 'bridge']),
    ]);
    const names = (text: string) =>
      text
        .split('\n')
        .map((line) => line.trim())
        .filter(Boolean);
    const activeNames = new Set(names(active));
    const networks = await Promise.all(
      names(all).map(async (network) =>
        parseNetworkXml(await this.virsh(['net-dumpxml', '--network', network]), activeNames.has(network)),
      ),
    );
    const managed = new Set(networks.flatMap((n) => (n.bridge ? [n.bridge] : [])));
    return [...networks, ...parseBridgesJson(bridgesJson, managed)];
  }

  /**
   * A running domain's addresses: libvirt's DHCP leases (`domifaddr --source lease`, for NICs on
   * its networks), then the guest agent's answer for NICs the leases do not cover (a bridge);
   * a guest without an agent just adds nothing. A stopped domain has none.
   */
  async interfaceAddresses({ name }: { name: string }): Promise<VmAddress[]> {
    checkName(name);
    if (!ACTIVE_STATES.includes(await this.state({ name }))) return [];
    const leases = parseDomifaddr(
      await this.virsh(['domifaddr', '--domain', name, '--source', 'lease'], { name }),
      'lease',
    );
    const fromAgent = await this.virsh(['domifaddr', '--domain', name, '--source', 'agent'], { name }).then(
      (output) => parseDomifaddr(output, 'agent'),
      () => [] as VmAddress[],
    );
    const leased = new Set(leases.map((a) => a.mac));
    const loopback = (a: VmAddress) =>
      a.mac === '00:00:00:00:00:00' || a.address === '127.0.0.1' || a.address === '::1';
    return [...leases, ...fromAgent.filter((a) => !leased.has(a.mac) && !loopback(a))];
  }

  async start({ name }: { name: string }): Promise<void> {
    await this.virsh(['start', '--domain', checkName(name)], { name });
  }

  async resume({ name }: { name: string }): Promise<void> {
    await this.virsh(['resume', '--domain', checkName(name)], { name });
  }

  async shutdown({ name }: { name: string }): Promise<void> {
    await this.virsh(['shutdown', '--domain', checkName(name)], { name });
  }

  async reboot({ name }: { name: string }): Promise<void> {
    await this.virsh(['reboot', '--domain', checkName(name)], { name });
  }

  async destroy(options?: { name: string }): Promise<void> {
    // typedi calls destroy() with no argument on every service it holds when an instance closes;
    // that is not a request to stop a domain, but the end of this hypervisor's life.
    if (options === undefined) return this.close();
    const name = checkName(options.name);
    await this.virsh(['destroy', '--domain', name], { name });
  }

  /**
   * Removes the domain's definition, with its NVRAM and managed-save image. With `removeStorage`,
   * also removes its storage: the files listed as owned in its Quantix metadata when it has
   * that, else its writable disks (never CD-ROMs or read-only disks, never backing files), and
   * the serial log at the path Quantix gives a domain of that name (no other log file). A
   * domain whose disks are in use (running, paused) is refused with INVALID_STATE.
   */
  async undefine({ name, removeStorage = false }: { name: string; removeStorage?: boolean }): Promise<void> {
    checkName(name);
    let files: string[] = [];
    let logs: string[] = [];
    if (removeStorage) {
      const state = await this.state({ name });
      if (ACTIVE_STATES.includes(state)) {
        throw new QuantixError(
          NodeRuntimeErrorCode.INVALID_STATE,
          `VM '${name}' is ${state}; stop it before removing it with its storage`,
          { details: { name, state } },
        );
      }
      const info = parseDomainXml(await this.dumpXml({ name }));
      files = storageOf(info);
      // The serial log Quantix named for it, and virtlogd's rolled-over copies (3 by default).
      if (info.consoles.serialLog === serialLogPath(name)) {
        logs = ['', '.1', '.2', '.3'].map((suffix) => `${info.consoles.serialLog}${suffix}`);
      }
    }
    await this.virsh(['undefine', '--domain', name, '--nvram', '--managed-save', '--snapshots-metadata'], { name });
    if (files.length > 0) {
      await this.run(['rm', '-f', '--', ...files]);
      this.logger?.info({ name, files }, 'removed the storage of an undefined domain');
    }
    // Best effort: the domain is gone already, and an SSH user of the libvirt group may not
    // remove what libvirt wrote as root; a log left behind is truncated when a namesake starts.
    if (logs.length > 0) {
      await this.run(['rm', '-f', '--', ...logs]).catch((error: unknown) =>
        this.logger?.warn({ name, logs, err: error }, 'could not remove the serial log of an undefined domain'),
      );
    }
  }

  async list(): Promise<DomainInfo[]> {
    const [listing, stats] = await Promise.all([
      this.virsh(['list', '--all', '--uuid', '--name']),
      this.virsh(['domstats', '--state']),
    ]);
    const states = parseDomstatsStates(stats);
    return listing
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        // "<uuid> <name>": the UUID has a fixed length, the name may contain spaces.
        const uuid = line.slice(0, 36);
        const name = line.slice(37);
        const stated = states.get(name);
        return { name, uuid, state: stated?.state ?? 'unknown', ...(stated?.reason ? { reason: stated.reason } : {}) };
      });
  }

  async state({ name }: { name: string }): Promise<DomainState> {
    const word = (await this.virsh(['domstate', '--domain', checkName(name)], { name })).trim();
    const state = STATE_WORDS[word];
    if (!state) {
      this.logger?.warn({ name, word }, 'virsh domstate printed a state this version does not know');
      return 'unknown';
    }
    return state;
  }

  async dumpXml({ name }: { name: string }): Promise<string> {
    return this.virsh(['dumpxml', '--domain', checkName(name)], { name });
  }

  /**
   * Opens a running domain's console where virsh runs (this host, or over the SSH connection):
   * serial port 0 through `virsh console`, or the VNC server's TCP port (from the live XML)
   * through `socat`. The node needs script (util-linux) and socat (Debian package socat).
   */
  async openConsole({ name, type }: { name: string; type: ConsoleType }): Promise<ConsoleStream> {
    const checked = checkName(name);
    const spawner = interactiveSpawner(this.runner);
    if (!spawner) {
      throw new QuantixError(
        ErrorCode.CONSOLE_UNAVAILABLE,
        `The runner for ${this.runner.target} cannot hold a console open`,
      );
    }
    if (!ACTIVE_STATES.includes(await this.state({ name: checked }))) {
      throw new QuantixError(
        ErrorCode.CONSOLE_UNAVAILABLE,
        `VM ${checked} is not running: start it to open its console`,
        {
          details: { name: checked, type },
        },
      );
    }
    const { consoles } = parseDomainXml(await this.dumpXml({ name: checked }));
    const argv =
      type === 'serial'
        ? consoles.serialPty
          ? this.serialConsoleArgv(checked, consoles.serialLog)
          : null
        : vncArgv(consoles.vnc);
    if (!argv) {
      throw new QuantixError(ErrorCode.CONSOLE_UNAVAILABLE, `VM ${checked} has no ${type} console`, {
        details: { name: checked, type },
      });
    }
    // No timeout on the relay itself: it lasts as long as someone watches the console.
    const relay = await spawner(argv, this.timeoutMs);
    return {
      output: relay.stdout,
      input: relay.stdin,
      close: () => relay.kill(),
      ended: relay.ended.then(() => undefined),
    };
  }

  /**
   * `virsh console --force` (libvirt's own console stream: it takes the console from another
   * viewer) inside `script`, which gives virsh the terminal it insists on. script runs its
   * command through a shell: every word is quoted by quoteArgv; virsh's stderr (a polkit notice
   * on hosts without polkit) is left out of the console.
   *
   * With a serial log, what the viewer sees is the log, followed (`tail -F`: it survives
   * virtlogd's rollover) from SERIAL_REPLAY_BYTES before its end, so the firmware's banner
   * written before anyone watched comes first; virsh only carries the keys in, its output is
   * dropped. Reading the log and then attaching virsh lost whatever the VM wrote in between
   * (QEMU drops pty output nobody reads): SeaBIOS's banner, when the console opened mid-boot.
   * `stty raw -echo` first, so neither the replay nor early keys are rewritten by the terminal.
   * Without a readable log, the live console alone, as virsh gives it.
   */
  private serialConsoleArgv(name: string, log: string | null): string[] {
    const console = quoteArgv(['virsh', '--quiet', '--connect', this.uri, 'console', '--force', name]);
    const live = `${console} 2>/dev/null`;
    // libvirt keeps the log 0600 root: an SSH user of the libvirt group who cannot read it gets the live console only.
    const command = log
      ? `if ${quoteArgv(['test', '-r', log])}; then stty raw -echo; ${quoteArgv(['tail', '-c', String(SERIAL_REPLAY_BYTES), '-F', '--', log])} 2>/dev/null & ${console} >/dev/null 2>&1; kill $!; else ${live}; fi`
      : live;
    return ['script', '--quiet', '--flush', '--return', '--command', command, '/dev/null'];
  }

  /** Attaches a disk file, to the running domain and its persistent definition alike. */
  async attachDisk(options: { name: string; sourcePath: string; target: string; format?: string }): Promise<void> {
    const name = checkName(options.name);
    const source = checkPath(options.sourcePath);
    const target = parseOrThrow(targetSchema, options.target, 'disk target');
    const format = parseOrThrow(formatSchema, options.format ?? 'qcow2', 'disk format');
    const bus = target.startsWith('vd') ? 'virtio' : target.startsWith('sd') ? 'sata' : 'ide';
    await this.virsh(
      [
        'attach-disk',
        '--domain',
        name,
        '--source',
        source,
        '--target',
        target,
        '--targetbus',
        bus,
        '--driver',
        'qemu',
        '--subdriver',
        format,
        '--persistent',
      ],
      { name },
    );
  }

  /**
   * Detaches a disk by target. On a running domain the guest must release a PCIe device, which
   * a guest without an OS (or one that ignores ACPI) never does: detach those while stopped.
   */
  async detachDisk(options: { name: string; target: string }): Promise<void> {
    const name = checkName(options.name);
    const target = parseOrThrow(targetSchema, options.target, 'disk target');
    await this.virsh(['detach-disk', '--domain', name, '--target', target, '--persistent'], { name });
  }

  /** Puts an ISO into a CD-ROM drive (replacing what is in it), live and in the definition. */
  async insertMedia(options: { name: string; target: string; sourcePath: string }): Promise<void> {
    const name = checkName(options.name);
    const target = parseOrThrow(targetSchema, options.target, 'CD-ROM target');
    const source = checkPath(options.sourcePath);
    const scope = await this.changeScope(name);
    await this.virsh(['change-media', '--domain', name, '--path', target, '--source', source, '--update', ...scope], {
      name,
    });
  }

  async ejectMedia(options: { name: string; target: string }): Promise<void> {
    const name = checkName(options.name);
    const target = parseOrThrow(targetSchema, options.target, 'CD-ROM target');
    const scope = await this.changeScope(name);
    await this.virsh(['change-media', '--domain', name, '--path', target, '--eject', ...scope], { name });
  }

  /**
   * Sets a shut-off domain's vCPUs and memory in its definition: current and maximum alike (a
   * Quantix domain runs with all it is given). libvirt refuses a current value above the maximum,
   * so each pair moves in the order that never crosses: the maximum first when growing, the
   * current value first when shrinking.
   */
  async setResources(options: { name: string; cpu?: number; memoryMiB?: number }): Promise<DomainResources> {
    const name = checkName(options.name);
    const wanted = parseOrThrow(resourcesSchema, { vcpus: options.cpu, memoryMiB: options.memoryMiB }, 'resources');
    const state = await this.state({ name });
    if (state !== 'shutoff') {
      throw new QuantixError(
        NodeRuntimeErrorCode.INVALID_STATE,
        `VM '${name}' is ${state}; stop it before changing its CPUs or memory`,
        { details: { name, state } },
      );
    }
    const before = parseDomainXml(await this.dumpXml({ name })).resources;
    // Each figure: what is wanted, what the definition says, and the virsh commands that set it.
    const figures = [
      {
        wanted: wanted.vcpus,
        current: before.cpu,
        maximum: before.maxCpu,
        set: (value: number, maximum: boolean) => [
          'setvcpus',
          '--domain',
          name,
          '--count',
          String(value),
          ...(maximum ? ['--maximum'] : []),
          '--config',
        ],
      },
      {
        wanted: wanted.memoryMiB,
        current: before.memoryMiB,
        maximum: before.maxMemoryMiB,
        set: (value: number, maximum: boolean) => [
          maximum ? 'setmaxmem' : 'setmem',
          '--domain',
          name,
          '--size',
          String(value * 1024),
          '--config',
        ],
      },
    ];
    for (const { wanted: value, current, maximum, set } of figures) {
      if (value === undefined || (value === current && value === maximum)) continue;
      const order = value > maximum ? [true, false] : [false, true];
      for (const settingMaximum of order) await this.virsh(set(value, settingMaximum), { name });
    }
    const after = parseDomainXml(await this.dumpXml({ name })).resources;
    return { cpu: after.cpu, memoryMiB: after.memoryMiB };
  }

  /** 'kvm' when libvirt can run KVM domains on this host, else 'qemu' (TCG emulation). */
  async virtType(): Promise<'kvm' | 'qemu'> {
    try {
      await this.virsh(['domcapabilities', '--virttype', 'kvm']);
      return 'kvm';
    } catch (error) {
      if (isQuantixError(error, NodeRuntimeErrorCode.HYPERVISOR_ERROR)) return 'qemu';
      throw error;
    }
  }

  private async uuid(name: string): Promise<string> {
    return (await this.virsh(['domuuid', '--domain', name], { name })).trim();
  }

  /** A running domain's media change goes live and into the definition; a stopped one's into the definition. */
  private async changeScope(name: string): Promise<string[]> {
    return ACTIVE_STATES.includes(await this.state({ name })) ? ['--live', '--config'] : ['--config'];
  }

  private async run(argv: string[], stdin?: string): Promise<string> {
    return (await this.runner.run({ argv, stdin, timeoutMs: this.timeoutMs })).stdout;
  }

  private async virsh(args: string[], context: { name?: string } = {}): Promise<string> {
    try {
      if (this.session) return await this.session.run(args, { timeoutMs: this.timeoutMs });
      return await this.run(['virsh', '--quiet', '--connect', this.uri, ...args]);
    } catch (error) {
      throw mapVirshError(error, { uri: this.uri, command: args[0] ?? '', name: context.name });
    }
  }
}

/** socat to a VNC server's port (an IP address from the live XML; nothing else is taken). */
function vncArgv(vnc: { host: string; port: number } | null): string[] | null {
  if (!vnc) return null;
  const family = isIP(vnc.host);
  if (family === 4) return ['socat', '-', `TCP4:${vnc.host}:${vnc.port}`];
  if (family === 6) return ['socat', '-', `TCP6:[${vnc.host}]:${vnc.port}`];
  return null;
}

/** The bounds a domain's spec has. */
const resourcesSchema = domainSpecSchema.pick({ vcpus: true, memoryMiB: true }).partial();

function checkName(name: string): string {
  return parseOrThrow(vmNameSchema, name, 'domain name');
}

function checkPath(path: string): string {
  return parseOrThrow(hostPathSchema, path, 'path');
}

/** The files undefine({ removeStorage }) removes: owned files per the metadata, else writable disks. */
function storageOf(info: ReturnType<typeof parseDomainXml>): string[] {
  if (info.ownedFiles.length > 0) return info.ownedFiles;
  return info.disks.filter((d) => d.device === 'disk' && !d.readOnly && d.path).map((d) => d.path as string);
}

/** `virsh domstats --state` → name → state, and why where that is one of DOMAIN_STATE_REASONS. */
export function parseDomstatsStates(
  output: string,
): Map<string, { state: DomainState; reason?: DomainStateReason | undefined }> {
  const states = new Map<string, { state: DomainState; reason?: DomainStateReason | undefined }>();
  let current: { state: DomainState; reason?: DomainStateReason | undefined } | undefined;
  for (const line of output.split('\n')) {
    const domain = /^Domain: '(.*)'$/.exec(line);
    if (domain) {
      current = { state: 'unknown' };
      states.set(domain[1] ?? '', current);
      continue;
    }
    const field = /^\s+state\.(state|reason)=(\d+)$/.exec(line);
    if (!field || !current) continue;
    // domstats prints state before reason.
    if (field[1] === 'state') current.state = STATE_NUMBERS[Number(field[2])] ?? 'unknown';
    else current.reason = REASON_NUMBERS[current.state]?.[Number(field[2])];
  }
  return states;
}

const NOT_FOUND = /failed to get domain|domain not found|no domain with matching/i;
const ALREADY_EXISTS = /already exists/i;
// "domain 'x' not running" is the test driver's words for QEMU's "domain is not running".
const INVALID_STATE =
  /requested operation is not valid|domain (is|'[^']*') not running|domain is already (active|running)|is not active|already has media/i;
const UNAVAILABLE =
  /failed to connect to the hypervisor|failed to connect socket|cannot recv data|cannot connect|connection refused|no connection driver available|authentication (failed|unavailable)/i;

/**
 * A failed virsh call as a QuantixError with a code a caller can act on. Failures that are not
 * virsh's own answer (timeouts, lost SSH connections, refused host keys) keep their codes.
 */
export function mapVirshError(error: unknown, context: { uri: string; command: string; name?: string }): unknown {
  if (!isQuantixError(error) || error.code !== ErrorCode.COMMAND_FAILED) return error;
  const exitCode = error.details.exitCode;
  if (typeof exitCode !== 'number') return error;
  const stderr = String(error.details.stderr ?? '');
  const said = stderr
    .split('\n')
    .map((l) => l.replace(/^error:\s*/, '').trim())
    .filter(Boolean)
    .join('; ');
  const details = { ...error.details, uri: context.uri, command: context.command, name: context.name ?? null };
  const subject = context.name ? `domain '${context.name}'` : `libvirt at ${context.uri}`;
  const make = (code: QuantixErrorCode, message: string) => new QuantixError(code, message, { details, cause: error });
  if (exitCode === 127) {
    return make(
      NodeRuntimeErrorCode.HYPERVISOR_UNAVAILABLE,
      `virsh is not installed where commands run (${error.details.target})`,
    );
  }
  if (UNAVAILABLE.test(stderr))
    return make(NodeRuntimeErrorCode.HYPERVISOR_UNAVAILABLE, `Cannot reach libvirt at ${context.uri}: ${said}`);
  if (NOT_FOUND.test(stderr)) return make(ErrorCode.NOT_FOUND, `No ${subject}: ${said}`);
  if (ALREADY_EXISTS.test(stderr))
    return make(ErrorCode.ALREADY_EXISTS, `${capitalize(subject)} already exists: ${said}`);
  if (INVALID_STATE.test(stderr)) {
    return make(
      NodeRuntimeErrorCode.INVALID_STATE,
      `virsh ${context.command} is not valid for ${subject} now: ${said}`,
    );
  }
  return make(
    NodeRuntimeErrorCode.HYPERVISOR_ERROR,
    `virsh ${context.command} failed for ${subject}: ${said || `exit status ${exitCode}`}`,
  );
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
