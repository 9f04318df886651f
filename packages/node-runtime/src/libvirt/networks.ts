import { ErrorCode, type HostNetwork, QuantixError, type VmAddress } from '@quantix/core';
import { XMLParser } from 'fast-xml-parser';

type XmlNode = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => name === 'ip',
});

/** `virsh net-dumpxml`: a libvirt network as a NIC's choice. `active` comes from `net-list`. */
export function parseNetworkXml(xml: string, active: boolean): HostNetwork {
  let doc: { network?: XmlNode };
  try {
    doc = parser.parse(xml) as { network?: XmlNode };
  } catch (error) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'Network XML could not be parsed', { cause: error });
  }
  const network = doc.network;
  if (!network || typeof network.name !== 'string') {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'Not a libvirt network XML (no <network><name>)');
  }
  const forward = network.forward as XmlNode | string | undefined;
  // No <forward> at all is an isolated network; <forward/> without a mode is NAT.
  const mode =
    forward === undefined ? 'isolated' : typeof forward === 'object' ? String(forward['@mode'] ?? 'nat') : 'nat';
  const bridge = network.bridge as XmlNode | undefined;
  const ips = (network.ip ?? []) as XmlNode[];
  return {
    attachment: 'network',
    name: network.name,
    active,
    forward: mode,
    bridge: typeof bridge?.['@name'] === 'string' ? bridge['@name'] : null,
    addresses: ips.flatMap((ip) => {
      const address = ip['@address'];
      if (typeof address !== 'string') return [];
      const prefix = typeof ip['@prefix'] === 'string' ? Number(ip['@prefix']) : prefixOfNetmask(ip['@netmask']);
      return [prefix === null ? address : `${address}/${prefix}`];
    }),
    dhcp: ips.some((ip) => ip.dhcp !== undefined),
  };
}

function prefixOfNetmask(netmask: unknown): number | null {
  if (typeof netmask !== 'string') return null;
  const octets = netmask.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return null;
  return octets.reduce((bits, octet) => bits + (octet.toString(2).match(/1/g)?.length ?? 0), 0);
}

/** One entry of `ip -json addr show type bridge`. */
interface IpJsonLink {
  ifname?: string;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}

/**
 * The host's Linux bridges from `ip -json addr show type bridge` (machine-readable JSON), as NIC
 * choices: those a libvirt network already manages (virbr0 of `default`) are left out, since a
 * NIC should name the network. A bridge is active when it is administratively up.
 */
export function parseBridgesJson(json: string, libvirtBridges: ReadonlySet<string>): HostNetwork[] {
  let links: IpJsonLink[];
  try {
    links = JSON.parse(json || '[]') as IpJsonLink[];
  } catch (error) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, 'ip -json printed something that is not JSON', { cause: error });
  }
  return links
    .filter((link): link is IpJsonLink & { ifname: string } => typeof link.ifname === 'string')
    .filter((link) => !libvirtBridges.has(link.ifname))
    .map((link) => ({
      attachment: 'bridge' as const,
      name: link.ifname,
      active: (link.flags ?? []).includes('UP'),
      forward: null,
      bridge: link.ifname,
      addresses: (link.addr_info ?? [])
        .filter((a) => typeof a.local === 'string' && a.scope !== 'link')
        .map((a) => (typeof a.prefixlen === 'number' ? `${a.local}/${a.prefixlen}` : String(a.local))),
      dhcp: false,
    }));
}

/**
 * `virsh domifaddr` output. virsh has no machine-readable form of it; its columns are fixed
 * and no value holds a space: name, MAC, protocol, address/prefix. A second address of one
 * interface repeats neither name nor MAC ('-'), so they carry over from the line above.
 */
export function parseDomifaddr(output: string, source: VmAddress['source']): VmAddress[] {
  const addresses: VmAddress[] = [];
  let current: { name: string | null; mac: string } | null = null;
  for (const line of output.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 4 || fields[0] === 'Name' || /^-+$/.test(line.trim())) continue;
    const [name, mac, protocol, cidr] = fields as [string, string, string, string];
    if (mac !== '-') current = { name: name === '-' ? null : name, mac: mac.toLowerCase() };
    if (!current || (protocol !== 'ipv4' && protocol !== 'ipv6')) continue;
    const slash = cidr.lastIndexOf('/');
    const address = slash === -1 ? cidr : cidr.slice(0, slash);
    const prefix = slash === -1 ? null : Number(cidr.slice(slash + 1));
    addresses.push({
      mac: current.mac,
      interface: current.name,
      family: protocol,
      address,
      prefix: prefix !== null && Number.isInteger(prefix) ? prefix : null,
      source,
    });
  }
  return addresses;
}
