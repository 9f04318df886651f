import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ErrorCode, QuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';

/**
 * Which URLs a download may fetch. Checked before any request is sent, again on every redirect
 * hop, and once more when the connection is made (against the addresses the host name resolves
 * to then), so neither a redirect nor a DNS answer that changes between check and connect can
 * turn a download against an internal service.
 */
export interface SourcePolicy {
  /** URL schemes allowed, without ':'. Default ['http', 'https']. */
  schemes?: readonly string[];
  /**
   * When given, only these hosts may be fetched: exact names ('cloud-images.ubuntu.com'),
   * sub-domain wildcards ('*.fedoraproject.org'), or IP literals.
   */
  allowHosts?: readonly string[] | null;
  /** Hosts never fetched, in the same forms as allowHosts; checked first. */
  denyHosts?: readonly string[];
  /** When given, only these ports may be fetched (the scheme's default port counts as given). */
  allowPorts?: readonly number[] | null;
  denyPorts?: readonly number[];
  /**
   * Address ranges (CIDR, or single addresses) a host may not resolve to. Default:
   * DEFAULT_DENIED_ADDRESSES — loopback, link-local (the 169.254.169.254 metadata service),
   * private, carrier-grade NAT, unspecified, multicast and their IPv6 counterparts.
   */
  denyAddresses?: readonly string[];
  /**
   * Address ranges allowed even though denyAddresses covers them: an internal mirror
   * ('10.20.0.0/16'), or loopback in tests ('127.0.0.1').
   */
  allowAddresses?: readonly string[];
  /**
   * URLs allowed whatever their address, by exact origin and path prefix — the control plane's
   * staged-upload endpoint (`http://cp:8080/api/v1/uploads/`), and nothing else on that host.
   * Compared after URL parsing, so `..` and encoded dots cannot climb out of the prefix. A
   * redirect from such a URL is checked like any other.
   */
  allowUrlPrefixes?: readonly string[];
  /** Redirects followed per request, each hop checked like the first URL. Default 5. */
  maxRedirects?: number;
}

/**
 * Addresses a download may not reach by default: everything that is not the public internet.
 * 169.254.0.0/16 holds the cloud metadata services (169.254.169.254) that an SSRF goes after.
 */
export const DEFAULT_DENIED_ADDRESSES: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
  '64:ff9b::/96',
];

export const DEFAULT_SOURCE_POLICY: Readonly<
  Required<Omit<SourcePolicy, 'allowHosts' | 'allowPorts' | 'allowUrlPrefixes'>>
> & {
  allowHosts: null;
  allowPorts: null;
} = Object.freeze({
  schemes: ['http', 'https'],
  allowHosts: null,
  denyHosts: [],
  allowPorts: null,
  denyPorts: [],
  denyAddresses: DEFAULT_DENIED_ADDRESSES,
  allowAddresses: [],
  maxRedirects: 5,
});

/** The lookup function node:http calls when it connects; the policy wraps dns.lookup with it. */
export type ConnectLookup = (
  hostname: string,
  options: { family?: number | string; all?: boolean } | number,
  callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

export type ResolveHost = (hostname: string) => Promise<LookupAddress[]>;

const defaultResolve: ResolveHost = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses),
    );
  });

function refuse(url: string, why: string, details: Record<string, unknown> = {}): QuantixError {
  return new QuantixError(ImagesCloudErrorCode.SOURCE_NOT_ALLOWED, `Source ${url} is not allowed: ${why}`, {
    details: { url, retryable: false, ...details },
  });
}

function parseCidr(range: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address = '', prefixText] = range.split('/');
  const version = isIP(address);
  if (version === 0) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, `Source policy: ${JSON.stringify(range)} is not an address range`, {
      details: { range },
    });
  }
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, `Source policy: ${JSON.stringify(range)} has a bad prefix length`, {
      details: { range },
    });
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const { address, prefix, family } = parseCidr(range);
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/** The 16 bytes of an IPv6 address, or null. */
function ipv6Bytes(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address.split('%')[0] as string;
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap((g) => [g >> 8, g & 255]);
}

const dottedQuad = (b: number[]) => b.join('.');

/**
 * The IPv4 address an IPv6 address carries, when it carries one: mapped (::ffff:0:0/96),
 * compatible (::/96), translated (::ffff:0:0:0/96), NAT64 (64:ff9b::/96, 64:ff9b:1::/48),
 * 6to4 (2002::/16) and Teredo (2001::/32, its server and its client). Each is judged by that
 * IPv4 too: `::7f00:1` is 127.0.0.1 to whatever routes it.
 */
export function embeddedIpv4(address: string): string[] {
  const b = ipv6Bytes(address);
  if (!b) return [];
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const last4 = b.slice(12, 16);
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return [dottedQuad(last4)];
  if (zero(0, 12) && !zero(12, 16)) return [dottedQuad(last4)];
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && zero(10, 12)) return [dottedQuad(last4)];
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) return [dottedQuad(last4)];
  if (b[0] === 0x20 && b[1] === 0x02) return [dottedQuad(b.slice(2, 6))];
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x00 && b[3] === 0x00) {
    return [dottedQuad(b.slice(4, 8)), dottedQuad(last4.map((x) => x ^ 0xff))];
  }
  return [];
}

/** The address to judge, plain, with the family BlockList wants. */
function normaliseAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  return { address: bare, family: isIP(bare) === 6 ? 'ipv6' : 'ipv4' };
}

function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/^\[|\]$/g, '');
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return host === p;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/** A SourcePolicy made ready to check URLs and addresses. */
export class SourceGuard {
  private readonly schemes: ReadonlySet<string>;
  private readonly allowHosts: readonly string[] | null;
  private readonly denyHosts: readonly string[];
  private readonly allowPorts: ReadonlySet<number> | null;
  private readonly denyPorts: ReadonlySet<number>;
  private readonly denied: BlockList;
  private readonly allowed: BlockList;
  private readonly allowUrlPrefixes: readonly URL[];
  readonly maxRedirects: number;

  constructor(
    policy: SourcePolicy = {},
    private readonly resolveHost: ResolveHost = defaultResolve,
  ) {
    this.schemes = new Set((policy.schemes ?? DEFAULT_SOURCE_POLICY.schemes).map((s) => s.toLowerCase()));
    this.allowHosts = policy.allowHosts ? policy.allowHosts.map((h) => h.toLowerCase()) : null;
    this.denyHosts = (policy.denyHosts ?? []).map((h) => h.toLowerCase());
    this.allowPorts = policy.allowPorts ? new Set(policy.allowPorts) : null;
    this.denyPorts = new Set(policy.denyPorts ?? []);
    this.denied = blockListOf(policy.denyAddresses ?? DEFAULT_DENIED_ADDRESSES);
    this.allowed = blockListOf(policy.allowAddresses ?? []);
    this.maxRedirects = policy.maxRedirects ?? DEFAULT_SOURCE_POLICY.maxRedirects;
    this.allowUrlPrefixes = (policy.allowUrlPrefixes ?? []).map((prefix) => {
      const url = new URL(prefix);
      if (!url.pathname.endsWith('/')) {
        throw new QuantixError(ErrorCode.INVALID_INPUT, `Source policy: URL prefix ${prefix} must end with '/'`, {
          details: { prefix },
        });
      }
      return url;
    });
  }

  /**
   * Checks scheme, host and port of a URL without touching the network; returns the parsed URL.
   * SOURCE_NOT_ALLOWED (or INVALID_INPUT for a string that is no URL) otherwise.
   */
  checkUrl(raw: string | URL): URL {
    let url: URL;
    try {
      url = typeof raw === 'string' ? new URL(raw) : raw;
    } catch (error) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, `${JSON.stringify(raw)} is not a URL`, {
        details: { url: String(raw) },
        cause: error,
      });
    }
    const text = url.href;
    const scheme = url.protocol.replace(/:$/, '').toLowerCase();
    if (!this.schemes.has(scheme)) {
      throw refuse(text, `scheme '${scheme}' is not one of ${[...this.schemes].join(', ')}`, { reason: 'scheme' });
    }
    if (url.username !== '' || url.password !== '') {
      throw refuse(text, 'credentials in the URL are not accepted', { reason: 'credentials' });
    }
    // An allowed prefix is an explicit allowance: its host, port and address lists do not apply.
    if (this.isAllowedUrl(url)) return url;
    const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
    if (host === '') throw refuse(text, 'it has no host', { reason: 'host' });
    if (this.denyHosts.some((p) => hostMatches(p, host))) {
      throw refuse(text, `host '${host}' is on the deny list`, { reason: 'host', host });
    }
    if (this.allowHosts && !this.allowHosts.some((p) => hostMatches(p, host))) {
      throw refuse(text, `host '${host}' is not on the allow list`, { reason: 'host', host });
    }
    const port = url.port === '' ? (DEFAULT_PORTS[url.protocol] ?? 0) : Number(url.port);
    if (this.denyPorts.has(port)) throw refuse(text, `port ${port} is on the deny list`, { reason: 'port', port });
    if (this.allowPorts && !this.allowPorts.has(port)) {
      throw refuse(text, `port ${port} is not on the allow list (${[...this.allowPorts].join(', ')})`, {
        reason: 'port',
        port,
      });
    }
    if (isIP(host) !== 0) this.checkAddress(text, host);
    return url;
  }

  /**
   * SOURCE_NOT_ALLOWED when the address lies in a denied range that no allowed range covers, or
   * carries an IPv4 address (see embeddedIpv4) that does.
   */
  checkAddress(url: string, address: string): void {
    const { address: plain, family } = normaliseAddress(address);
    // The IPv4 an IPv6 address carries first: a refusal names what would really be reached.
    const judged: { address: string; family: 'ipv4' | 'ipv6' }[] = [
      ...(family === 'ipv6' ? embeddedIpv4(plain).map((v4) => ({ address: v4, family: 'ipv4' as const })) : []),
      { address: plain, family },
    ];
    for (const candidate of judged) {
      if (
        this.denied.check(candidate.address, candidate.family) &&
        !this.allowed.check(candidate.address, candidate.family)
      ) {
        throw refuse(
          url,
          `address ${candidate.address}${candidate.address === plain ? '' : ` (in ${plain})`} is in a denied range (loopback, private, link-local or metadata)`,
          { reason: 'address', address: candidate.address },
        );
      }
    }
  }

  /** Whether `url` lies under one of the policy's allowed URL prefixes (same origin, path below). */
  isAllowedUrl(url: string | URL): boolean {
    if (this.allowUrlPrefixes.length === 0) return false;
    let parsed: URL;
    try {
      parsed = typeof url === 'string' ? new URL(url) : url;
    } catch {
      return false;
    }
    if (parsed.username || parsed.password) return false;
    return this.allowUrlPrefixes.some(
      (prefix) => parsed.origin === prefix.origin && parsed.pathname.startsWith(prefix.pathname),
    );
  }

  /**
   * Checks the URL, then resolves its host and checks every address it resolves to. This is
   * the check made before the first request; connections are checked again by `lookup`.
   */
  async checkSource(raw: string | URL): Promise<URL> {
    const url = this.checkUrl(raw);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0 || this.isAllowedUrl(url)) return url;
    let addresses: LookupAddress[];
    try {
      addresses = await this.resolveHost(host);
    } catch (error) {
      throw new QuantixError(
        ErrorCode.DOWNLOAD_FAILED,
        `Cannot resolve host '${host}' of ${url.href}: ${(error as Error).message}`,
        {
          details: { url: url.href, host, retryable: true, errno: (error as NodeJS.ErrnoException).code ?? null },
          cause: error,
        },
      );
    }
    for (const entry of addresses) this.checkAddress(url.href, entry.address);
    return url;
  }

  /**
   * A `lookup` for http.request that refuses, at connect time, a host whose answer now includes
   * a denied address (DNS rebinding between the check and the connection).
   */
  connectLookup(url: string): ConnectLookup {
    const allowed = this.isAllowedUrl(url);
    return (hostname, options, callback) => {
      const wantAll = typeof options === 'object' && options.all === true;
      this.resolveHost(hostname).then(
        (addresses) => {
          try {
            if (!allowed) for (const entry of addresses) this.checkAddress(url, entry.address);
          } catch (error) {
            callback(error as NodeJS.ErrnoException, wantAll ? [] : '', 4);
            return;
          }
          const family = typeof options === 'object' ? Number(options.family ?? 0) : Number(options);
          const usable = family === 4 || family === 6 ? addresses.filter((a) => a.family === family) : addresses;
          if (usable.length === 0) {
            const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
            callback(error, wantAll ? [] : '', 4);
            return;
          }
          if (wantAll) callback(null, usable);
          else callback(null, (usable[0] as LookupAddress).address, (usable[0] as LookupAddress).family);
        },
        (error: NodeJS.ErrnoException) => callback(error, wantAll ? [] : '', 4),
      );
    };
  }
}
