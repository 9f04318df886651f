import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ErrorCode, QuantixError } from '../errors.js';

/** What a NIC plugs into: a libvirt network (`virsh net-list`) or a host bridge (`/sys/class/net/<br>/bridge`). */
export const NIC_ATTACHMENTS = ['network', 'bridge'] as const;
export type NicAttachment = (typeof NIC_ATTACHMENTS)[number];

/** The only NIC model Quantix gives VMs: paravirtual, fast, in every cloud image's kernel. */
export const NIC_MODELS = ['virtio'] as const;

/** QEMU's OUI. Its first octet 0x52 has the locally-administered bit set and the multicast bit clear. */
export const MAC_PREFIX = '52:54:00';

/** A unicast MAC address, lower-case, colon-separated: how libvirt prints them. */
export const macAddressSchema = z
  .string()
  .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, 'must be a MAC address such as 52:54:00:12:34:56 (lower-case hex)')
  .refine((mac) => (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0, 'must be a unicast address (even first octet)');

/** A libvirt network name or a Linux interface name (bridge): argv-safe, XML-safe. */
export const networkNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'may contain only letters, digits, ".", "_" and "-"');
/** Linux interface names are at most 15 characters (IFNAMSIZ - 1). */
export const bridgeNameSchema = networkNameSchema.pipe(z.string().max(15, 'must be at most 15 characters'));

/** One NIC of a VM, as recorded: where it plugs in, its model and its MAC (generated once, kept). */
export interface VmNic {
  attachment: NicAttachment;
  /** The libvirt network's name, or the host bridge's. */
  source: string;
  model: (typeof NIC_MODELS)[number];
  mac: string;
}

export const vmNicSchema = z.discriminatedUnion('attachment', [
  z
    .object({
      attachment: z.literal('network'),
      source: networkNameSchema,
      model: z.enum(NIC_MODELS).default('virtio'),
      mac: macAddressSchema,
    })
    .strict(),
  z
    .object({
      attachment: z.literal('bridge'),
      source: bridgeNameSchema,
      model: z.enum(NIC_MODELS).default('virtio'),
      mac: macAddressSchema,
    })
    .strict(),
]);

/** A NIC a user asks for: a network or bridge, and a MAC only if they want a particular one. */
export const nicRequestSchema = z
  .object({
    attachment: z.enum(NIC_ATTACHMENTS).default('network'),
    source: networkNameSchema,
    mac: macAddressSchema.optional(),
  })
  .strict();
export type NicRequest = z.input<typeof nicRequestSchema>;

/**
 * A NIC as people write it: `default` (a libvirt network) or `bridge:br0` (a host bridge);
 * `network:name` is accepted too. INVALID_INPUT for anything else.
 */
export function parseNicReference(text: string): { attachment: NicAttachment; source: string } {
  const colon = text.indexOf(':');
  const kind = colon === -1 ? 'network' : text.slice(0, colon);
  const source = colon === -1 ? text : text.slice(colon + 1);
  if (kind !== 'network' && kind !== 'bridge') {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `${JSON.stringify(text)} is not a network: write a libvirt network's name (default) or bridge:<name> (bridge:br0)`,
      { details: { value: text } },
    );
  }
  const parsed = (kind === 'bridge' ? bridgeNameSchema : networkNameSchema).safeParse(source);
  if (!parsed.success) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `${JSON.stringify(text)} is not a network: ${kind} name ${parsed.error.issues[0]?.message ?? 'is invalid'}`,
      { details: { value: text } },
    );
  }
  return { attachment: kind, source: parsed.data };
}

/**
 * A MAC in QEMU's locally administered range (52:54:00:xx:xx:xx) that is in none of `taken`.
 * 2^24 addresses: a collision is rare, and `taken` makes it impossible among known NICs.
 */
export function generateMac(
  taken: ReadonlySet<string> = new Set(),
  random: (n: number) => Buffer = randomBytes,
): string {
  for (let attempt = 0; attempt < 64; attempt++) {
    const tail = [...random(3)].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
    const mac = `${MAC_PREFIX}:${tail}`;
    if (!taken.has(mac)) return mac;
  }
  throw new QuantixError(ErrorCode.INTERNAL_ERROR, 'Could not find a free MAC address in 64 attempts');
}

/** A network a node offers VMs: one of its libvirt networks, or a bridge of its host. */
export const hostNetworkSchema = z.object({
  attachment: z.enum(NIC_ATTACHMENTS),
  name: z.string().min(1).max(64),
  /** Whether a VM can plug in now: the libvirt network is started, the bridge is up. */
  active: z.boolean(),
  /** A libvirt network's forward mode (nat, route, bridge, open, isolated …); null for a host bridge. */
  forward: z.string().max(32).nullable(),
  /** The Linux bridge behind it (virbr0 for libvirt's default), when there is one. */
  bridge: z.string().max(15).nullable(),
  /** The host's addresses on it, CIDR (192.168.122.1/24): where the VMs' subnet is. */
  addresses: z.array(z.string().max(64)).max(16),
  /** Whether libvirt hands out addresses on it (DHCP), so the VM's address shows without a guest agent. */
  dhcp: z.boolean(),
});
export type HostNetwork = z.infer<typeof hostNetworkSchema>;

/** Where a VM's address was learnt: libvirt's DHCP leases, the guest agent, or the host's ARP table. */
export const ADDRESS_SOURCES = ['lease', 'agent', 'arp'] as const;

/** One address of a VM, on the NIC with that MAC. */
export const vmAddressSchema = z.object({
  mac: z.string().max(32),
  /** The name the guest or host gives the interface (vnet0 for a lease, eth0 from the agent). */
  interface: z.string().max(64).nullable(),
  family: z.enum(['ipv4', 'ipv6']),
  address: z.string().max(64),
  prefix: z.number().int().min(0).max(128).nullable(),
  source: z.enum(ADDRESS_SOURCES),
});
export type VmAddress = z.infer<typeof vmAddressSchema>;
