import { isAbsolute } from 'node:path';
import { ErrorCode, parseOrThrow, QuantixError, vmNameSchema } from '@quantix/core';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { z } from 'zod';

/** The namespace of the metadata Quantix keeps inside a domain's XML. */
export const QUANTIX_XML_NAMESPACE = 'urn:quantix:domain:1';
/** libosinfo's namespace in a domain's metadata, where virt-install and virt-manager record the guest OS. */
export const LIBOSINFO_XML_NAMESPACE = 'http://libosinfo.org/xmlns/libvirt/domain/1.0';

// XML 1.0 cannot carry most control characters at all, escaped or not.
const xmlText = z.string().refine((s) => !hasXmlForbiddenCharacter(s), 'must not contain control characters');

/** Characters XML 1.0 cannot carry: C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF. */
function hasXmlForbiddenCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0xfffe || code === 0xffff) {
      return true;
    }
  }
  return false;
}

export const hostPathSchema = xmlText
  .pipe(z.string().min(1).max(4096))
  .refine((p) => isAbsolute(p), 'must be an absolute path on the node')
  .refine((p) => !p.includes('\n') && !p.includes('\r'), 'must not contain line breaks')
  .refine((p) => !p.split('/').includes('..'), "must not contain '..'");

const diskSchema = z
  .object({
    path: hostPathSchema,
    format: z.enum(['qcow2', 'raw']).default('qcow2'),
    bus: z.enum(['virtio', 'sata', 'scsi']).default('virtio'),
    /** Target device name (vda, sdb, …); allocated in order per bus when left out. */
    target: z
      .string()
      .regex(/^(vd|sd|hd)[a-z]{1,2}$/)
      .optional(),
    readOnly: z.boolean().default(false),
  })
  .strict();

const cdromSchema = z
  .object({
    /** The ISO; null for an empty drive that media can be inserted into later. */
    path: hostPathSchema.nullable(),
    bus: z.enum(['sata', 'scsi']).default('sata'),
    target: z
      .string()
      .regex(/^sd[a-z]{1,2}$/)
      .optional(),
  })
  .strict();

const networkSchema = z.discriminatedUnion('kind', [
  /** A libvirt network (`virsh net-list`), e.g. 'default' (NAT). */
  z
    .object({
      kind: z.literal('network'),
      network: xmlText.pipe(z.string().min(1).max(255)),
      mac: z
        .string()
        .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
        .optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('bridge'),
      bridge: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'must be a Linux interface name'),
      mac: z
        .string()
        .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
        .optional(),
    })
    .strict(),
  /** QEMU's user-mode networking: outbound only, needs no host set-up. */
  z.object({ kind: z.literal('user') }).strict(),
]);

export const domainSpecSchema = z
  .object({
    name: vmNameSchema,
    uuid: z.uuid().optional(),
    title: xmlText.pipe(z.string().max(200)).optional(),
    description: xmlText.pipe(z.string().max(10_000)).optional(),
    memoryMiB: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024),
    vcpus: z.number().int().min(1).max(1024),
    firmware: z.enum(['bios', 'uefi']).default('bios'),
    /** 'kvm' with hardware virtualisation, 'qemu' for TCG emulation (no /dev/kvm). */
    virtType: z.enum(['kvm', 'qemu']).default('kvm'),
    machine: z.enum(['q35', 'pc']).default('q35'),
    /**
     * The guest CPU: QEMU's default model, or the host's. host-passthrough is fastest but can fail
     * to start under nested virtualisation (unsupported MSRs), so it is asked for, never assumed;
     * TCG ignores it.
     */
    cpu: z.enum(['default', 'host-passthrough', 'host-model']).default('default'),
    disks: z.array(diskSchema).max(32).default([]),
    cdroms: z.array(cdromSchema).max(8).default([]),
    /** No network at all when empty. */
    networks: z.array(networkSchema).max(16).default([]),
    /** What boots first; the other kind follows. */
    bootFrom: z.enum(['disk', 'cdrom']).default('disk'),
    serialConsole: z.boolean().default(true),
    /**
     * The virtio channel a QEMU guest agent in the guest answers on: with it, a guest that runs
     * one reports its addresses on any NIC (a bridge's too, where libvirt sees no DHCP lease).
     */
    guestAgent: z.boolean().default(true),
    /** VNC on 127.0.0.1 with a virtio GPU, or no display at all. */
    graphics: z.enum(['none', 'vnc']).default('none'),
    /** The guest OS as libosinfo names it ("http://ubuntu.com/ubuntu/24.04"), kept in the libosinfo metadata. */
    osinfoId: z
      .string()
      .max(256)
      .regex(/^https?:\/\/[A-Za-z0-9.-]+(\/[A-Za-z0-9._+-]+)*\/?$/, 'must be an osinfo id: http://vendor/os/version')
      .optional(),
    /** Kept in the domain XML under the Quantix namespace. */
    metadata: z
      .object({
        vmId: xmlText.pipe(z.string().max(128)).optional(),
        /** Files made for this VM alone (overlay, seed ISO, empty disk): deleting the VM removes exactly these. */
        ownedFiles: z.array(hostPathSchema).max(64).default([]),
        /** Directories made for this VM, deepest first: removed on delete after its files, if empty. */
        ownedDirectories: z.array(hostPathSchema).max(64).default([]),
      })
      .strict()
      .default({ ownedFiles: [], ownedDirectories: [] }),
  })
  .strict();

export type DomainSpec = z.input<typeof domainSpecSchema>;
export type ValidDomainSpec = z.output<typeof domainSpecSchema>;

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
  // Every text and attribute value is escaped (&, <, >, ', ").
  processEntities: true,
});

type XmlNode = Record<string, unknown>;

/**
 * The libvirt domain XML for a VM, as a pure function of its spec: same spec, same bytes (the
 * golden files under __fixtures__ pin them). Every value goes through the XML builder, which
 * escapes it; names, paths and MACs are validated first (INVALID_INPUT).
 */
export function buildDomainXml(input: DomainSpec): string {
  const spec = parseOrThrow(domainSpecSchema, input, 'domain spec');
  const targets = new TargetAllocator([...spec.disks.map((d) => d.target), ...spec.cdroms.map((c) => c.target)]);
  const diskBoot = spec.bootFrom === 'disk' ? 1 : spec.cdroms.length + 1;
  const cdromBoot = spec.bootFrom === 'cdrom' ? 1 : spec.disks.length + 1;

  const disks: XmlNode[] = spec.disks.map((disk, i) => ({
    '@type': 'file',
    '@device': 'disk',
    driver: { '@name': 'qemu', '@type': disk.format, '@discard': 'unmap' },
    source: { '@file': disk.path },
    target: { '@dev': disk.target ?? targets.next(disk.bus === 'virtio' ? 'vd' : 'sd'), '@bus': disk.bus },
    ...(disk.readOnly ? { readonly: '' } : {}),
    boot: { '@order': diskBoot + i },
  }));
  const cdroms: XmlNode[] = spec.cdroms.map((cdrom, i) => ({
    '@type': 'file',
    '@device': 'cdrom',
    driver: { '@name': 'qemu', '@type': 'raw' },
    ...(cdrom.path ? { source: { '@file': cdrom.path } } : {}),
    target: { '@dev': cdrom.target ?? targets.next('sd'), '@bus': cdrom.bus },
    readonly: '',
    boot: { '@order': cdromBoot + i },
  }));
  const interfaces: XmlNode[] = spec.networks.map((net) => {
    switch (net.kind) {
      case 'network':
        return {
          '@type': 'network',
          ...(net.mac ? { mac: { '@address': net.mac } } : {}),
          source: { '@network': net.network },
          model: { '@type': 'virtio' },
        };
      case 'bridge':
        return {
          '@type': 'bridge',
          ...(net.mac ? { mac: { '@address': net.mac } } : {}),
          source: { '@bridge': net.bridge },
          model: { '@type': 'virtio' },
        };
      default:
        return { '@type': 'user', model: { '@type': 'virtio' } };
    }
  });

  const os: XmlNode = {
    ...(spec.firmware === 'uefi' ? { '@firmware': 'efi' } : {}),
    type: { '@arch': 'x86_64', '@machine': spec.machine, '#text': 'hvm' },
    // SeaBIOS writes to the serial console too, so a console shows the boot from its first line.
    ...(spec.firmware === 'bios' && spec.serialConsole ? { bios: { '@useserial': 'yes' } } : {}),
    // Plain UEFI: the secure-boot firmware would also need SMM and enrolled keys.
    ...(spec.firmware === 'uefi' ? { firmware: { feature: { '@enabled': 'no', '@name': 'secure-boot' } } } : {}),
  };

  const domain: XmlNode = {
    '@type': spec.virtType,
    name: spec.name,
    ...(spec.uuid ? { uuid: spec.uuid } : {}),
    ...(spec.title ? { title: spec.title } : {}),
    ...(spec.description ? { description: spec.description } : {}),
    metadata: {
      'quantix:vm': {
        '@xmlns:quantix': QUANTIX_XML_NAMESPACE,
        ...(spec.metadata.vmId ? { 'quantix:id': spec.metadata.vmId } : {}),
        'quantix:owned-file': spec.metadata.ownedFiles.map((path) => ({ '@path': path })),
        'quantix:owned-directory': spec.metadata.ownedDirectories.map((path) => ({ '@path': path })),
      },
      // As virt-install writes it, so virt-manager and libosinfo tools know the guest OS.
      ...(spec.osinfoId
        ? {
            'libosinfo:libosinfo': {
              '@xmlns:libosinfo': LIBOSINFO_XML_NAMESPACE,
              'libosinfo:os': { '@id': spec.osinfoId },
            },
          }
        : {}),
    },
    memory: { '@unit': 'MiB', '#text': spec.memoryMiB },
    vcpu: spec.vcpus,
    os,
    features: { acpi: '', apic: '' },
    // TCG cannot pass the host CPU through; it emulates its default model.
    ...(spec.virtType === 'kvm' && spec.cpu !== 'default' ? { cpu: { '@mode': spec.cpu } } : {}),
    clock: { '@offset': 'utc' },
    on_poweroff: 'destroy',
    on_reboot: 'restart',
    on_crash: 'destroy',
    devices: {
      disk: [...disks, ...cdroms],
      ...(interfaces.length > 0 ? { interface: interfaces } : {}),
      ...(spec.serialConsole
        ? {
            // QEMU drops what a pty no one has open is sent (the firmware's banner comes before
            // any viewer), while its log keeps every byte of this boot: a console replays it first.
            serial: {
              '@type': 'pty',
              log: { '@file': serialLogPath(spec.name), '@append': 'off' },
              target: { '@port': 0 },
            },
            console: { '@type': 'pty', target: { '@type': 'serial', '@port': 0 } },
          }
        : {}),
      ...(spec.guestAgent
        ? { channel: { '@type': 'unix', target: { '@type': 'virtio', '@name': 'org.qemu.guest_agent.0' } } }
        : {}),
      ...(spec.graphics === 'vnc'
        ? {
            graphics: { '@type': 'vnc', '@autoport': 'yes', '@listen': '127.0.0.1' },
            video: { model: { '@type': 'virtio' } },
          }
        : {}),
      memballoon: { '@model': 'virtio' },
      rng: { '@model': 'virtio', backend: { '@model': 'random', '#text': '/dev/urandom' } },
    },
  };
  return builder.build({ domain }) as string;
}

/** Hands out target device names per prefix (vda, vdb, …), skipping those given explicitly. */
class TargetAllocator {
  private readonly used: Set<string>;
  constructor(taken: (string | undefined)[]) {
    this.used = new Set(taken.filter((t): t is string => Boolean(t)));
    if (this.used.size !== taken.filter(Boolean).length) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'Two devices of the domain have the same target', {
        details: { targets: taken },
      });
    }
  }
  next(prefix: string): string {
    for (let i = 0; i < 26 * 27; i++) {
      const name = `${prefix}${deviceSuffix(i)}`;
      if (!this.used.has(name)) {
        this.used.add(name);
        return name;
      }
    }
    throw new QuantixError(ErrorCode.INVALID_INPUT, `No free ${prefix}* target left`);
  }
}

/** 0 → a, 25 → z, 26 → aa: the kernel's naming of disks. */
function deviceSuffix(index: number): string {
  const letter = (n: number) => String.fromCharCode(97 + n);
  return index < 26 ? letter(index) : `${letter(Math.floor(index / 26) - 1)}${letter(index % 26)}`;
}

/** What Quantix reads back from a domain's XML (`virsh dumpxml`). */
export interface DomainXmlInfo {
  name: string;
  uuid: string | null;
  firmware: 'bios' | 'uefi';
  disks: { device: 'disk' | 'cdrom'; target: string; bus: string | null; path: string | null; readOnly: boolean }[];
  /** Its NICs: what each plugs into (a network's or bridge's name; null for user-mode), its MAC and model. */
  interfaces: { type: string; source: string | null; mac: string | null; model: string | null }[];
  /** The Quantix metadata: the VM id and the files created for this VM alone. */
  vmId: string | null;
  ownedFiles: string[];
  ownedDirectories: string[];
  /**
   * Where a running domain's consoles are (live XML only: libvirt fills them in at start): the
   * pty of its first serial port and the log of what it wrote, and the address of its VNC server.
   * Null when it has none.
   */
  consoles: { serialPty: string | null; serialLog: string | null; vnc: { host: string; port: number } | null };
  /** The guest OS from the libosinfo metadata, when the domain has it. */
  osinfoId: string | null;
  /**
   * Its vCPUs and memory: `cpu`/`memoryMiB` what it runs with, `maxCpu`/`maxMemoryMiB` what its
   * definition allows (libvirt refuses a current value above its maximum).
   */
  resources: { cpu: number; maxCpu: number; memoryMiB: number; maxMemoryMiB: number };
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  removeNSPrefix: true,
  isArray: (name) => ['disk', 'owned-file', 'owned-directory', 'interface', 'serial', 'graphics'].includes(name),
});

/** Reads the parts of a domain's XML that Quantix acts on. INVALID_INPUT for XML that is not a domain. */
export function parseDomainXml(xml: string): DomainXmlInfo {
  let doc: { domain?: XmlNode };
  try {
    doc = parser.parse(xml) as { domain?: XmlNode };
  } catch (error) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'Domain XML could not be parsed', { cause: error });
  }
  const domain = doc.domain;
  if (!domain || typeof domain.name !== 'string') {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'Not a libvirt domain XML (no <domain><name>)');
  }
  const devices = (domain.devices ?? {}) as {
    disk?: XmlNode[];
    interface?: XmlNode[];
    serial?: XmlNode[];
    graphics?: XmlNode[];
  };
  const os = (domain.os ?? {}) as XmlNode;
  const loader = os.loader as XmlNode | undefined;
  const metadata = ((domain.metadata as XmlNode | undefined)?.vm ?? {}) as XmlNode;
  const osinfoOs = ((domain.metadata as XmlNode | undefined)?.libosinfo as XmlNode | undefined)?.os as
    | XmlNode
    | undefined;
  return {
    name: domain.name,
    uuid: typeof domain.uuid === 'string' ? domain.uuid : null,
    firmware: os['@firmware'] === 'efi' || loader?.['@type'] === 'pflash' ? 'uefi' : 'bios',
    disks: (devices.disk ?? []).map((disk) => {
      const source = disk.source as XmlNode | undefined;
      const target = (disk.target ?? {}) as XmlNode;
      return {
        device: disk['@device'] === 'cdrom' ? 'cdrom' : 'disk',
        target: String(target['@dev'] ?? ''),
        bus: typeof target['@bus'] === 'string' ? target['@bus'] : null,
        path: typeof source?.['@file'] === 'string' ? source['@file'] : null,
        readOnly: 'readonly' in disk,
      };
    }),
    interfaces: (devices.interface ?? []).map((nic) => {
      const source = (nic.source ?? {}) as XmlNode;
      const named = source['@network'] ?? source['@bridge'];
      const mac = (nic.mac as XmlNode | undefined)?.['@address'];
      const model = (nic.model as XmlNode | undefined)?.['@type'];
      return {
        type: String(nic['@type'] ?? ''),
        source: typeof named === 'string' ? named : null,
        mac: typeof mac === 'string' ? mac.toLowerCase() : null,
        model: typeof model === 'string' ? model : null,
      };
    }),
    vmId: typeof metadata.id === 'string' ? metadata.id : null,
    ownedFiles: ((metadata['owned-file'] ?? []) as XmlNode[]).map((f) => String(f['@path'])),
    ownedDirectories: ((metadata['owned-directory'] ?? []) as XmlNode[]).map((d) => String(d['@path'])),
    consoles: {
      serialPty: serialPtyOf(devices.serial ?? []),
      serialLog: serialLogOf(devices.serial ?? []),
      vnc: vncOf(devices.graphics ?? []),
    },
    osinfoId: typeof osinfoOs?.['@id'] === 'string' ? osinfoOs['@id'] : null,
    resources: resourcesOf(domain),
  };
}

/** The text of an element the parser gave as a string, or as an object when it has attributes. */
function textOf(node: unknown): string | undefined {
  if (typeof node === 'string') return node;
  const text = (node as XmlNode | undefined)?.['#text'];
  return typeof text === 'string' ? text : undefined;
}

const BYTES_PER_UNIT: Record<string, number> = {
  b: 1,
  bytes: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/** A libvirt memory element (`<memory unit='KiB'>262144</memory>`, KiB when no unit) in MiB; 0 when absent. */
function mebibytesOf(node: unknown): number {
  const value = Number(textOf(node));
  const unit = String((node as XmlNode | undefined)?.['@unit'] ?? 'KiB').toLowerCase();
  const bytes = BYTES_PER_UNIT[unit];
  return Number.isFinite(value) && bytes !== undefined ? Math.floor((value * bytes) / 1024 ** 2) : 0;
}

function resourcesOf(domain: XmlNode): DomainXmlInfo['resources'] {
  const maxCpu = Number(textOf(domain.vcpu) ?? 0);
  const current = Number((domain.vcpu as XmlNode | undefined)?.['@current']);
  const maxMemoryMiB = mebibytesOf(domain.memory);
  const currentMemory = domain.currentMemory === undefined ? maxMemoryMiB : mebibytesOf(domain.currentMemory);
  return {
    cpu: Number.isInteger(current) && current > 0 ? current : maxCpu,
    maxCpu,
    memoryMiB: currentMemory,
    maxMemoryMiB,
  };
}

const firstSerial = (serials: XmlNode[]) =>
  serials.find((s) => String((s.target as XmlNode | undefined)?.['@port'] ?? '0') === '0');

/** Where a domain's serial port 0 logs what it writes (Quantix's domains: under libvirt's QEMU log directory). */
export function serialLogPath(name: string): string {
  return `/var/log/libvirt/qemu/${name}-serial0.log`;
}

/** The log file of serial port 0, when it has one (an absolute path without `..`). */
function serialLogOf(serials: XmlNode[]): string | null {
  const file = (firstSerial(serials)?.log as XmlNode | undefined)?.['@file'];
  return typeof file === 'string' && file.startsWith('/') && !file.split('/').includes('..') ? file : null;
}

/** The pty of serial port 0, when libvirt gave it one (only a pty under /dev/pts is taken). */
function serialPtyOf(serials: XmlNode[]): string | null {
  const first = firstSerial(serials);
  const path = (first?.source as XmlNode | undefined)?.['@path'];
  return first?.['@type'] === 'pty' && typeof path === 'string' && /^\/dev\/pts\/[0-9]+$/.test(path) ? path : null;
}

/** The VNC server's address: its port once started (autoport gives -1 before), on its listen address. */
function vncOf(graphics: XmlNode[]): { host: string; port: number } | null {
  const vnc = graphics.find((g) => g['@type'] === 'vnc');
  const port = Number(vnc?.['@port']);
  if (!vnc || !Number.isInteger(port) || port <= 0 || port > 65535) return null;
  const listen = String(vnc['@listen'] ?? '127.0.0.1');
  // A VNC server listening on every address is reached on loopback, where it listens too.
  return { host: listen === '0.0.0.0' || listen === '::' || listen === '' ? '127.0.0.1' : listen, port };
}
