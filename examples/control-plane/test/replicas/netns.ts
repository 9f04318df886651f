/**
 * Hosts on one machine for the replica tests: a Linux bridge in the root network namespace
 * with an address of its own (the "LAN" side where PostgreSQL's proxy, the image mirror and the
 * nodes are), and one network namespace per host, joined to the bridge by a veth pair and given
 * the next address of a /24. Names and the subnet are new for every run, so that runs side by
 * side do not clash; destroy() removes all of it and is safe to call after a half-made start.
 * Needs root and iproute2 (`ip`).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Host {
  /** The network namespace: run a process in it with `ip netns exec <namespace> …`. */
  namespace: string;
  address: string;
}

export interface TestNetwork {
  bridge: string;
  /** The bridge's own address, in the root namespace: what the hosts reach the root namespace at. */
  rootAddress: string;
  hosts: Host[];
  /** Takes the host's link down (`up: false`) or up again: the host is cut off from everything. */
  setLink(host: Host, up: boolean): Promise<void>;
  destroy(): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args, { timeout: 20_000 })).stdout;
}

/** A /24 in 10.0.0.0/8 that no interface of the root namespace is in yet. */
async function freeSubnet(): Promise<string> {
  const used = await ip('-4', '-o', 'addr', 'show');
  for (;;) {
    const [b, c] = randomBytes(2);
    const prefix = `10.${200 + ((b as number) % 50)}.${c as number}`;
    if (!used.includes(` ${prefix}.`)) return prefix;
  }
}

export async function createTestNetwork(hostCount: number): Promise<TestNetwork> {
  const tag = randomBytes(3).toString('hex');
  const bridge = `qxbr${tag}`;
  const prefix = await freeSubnet();
  const rootAddress = `${prefix}.1`;
  const hosts: Host[] = [];
  const rootEnds: string[] = [];
  const destroy = async () => {
    for (const host of hosts) await ip('netns', 'del', host.namespace).catch(() => undefined);
    // Deleting a namespace deletes its veth end and so the pair; this is for a half-made pair.
    for (const end of rootEnds) await ip('link', 'del', end).catch(() => undefined);
    await ip('link', 'del', bridge).catch(() => undefined);
  };
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${rootAddress}/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    for (let i = 0; i < hostCount; i++) {
      const namespace = `quantix-test-${tag}-${i}`;
      const rootEnd = `qxv${tag}r${i}`;
      const hostEnd = `qxv${tag}h${i}`;
      const address = `${prefix}.${i + 2}`;
      await ip('netns', 'add', namespace);
      hosts.push({ namespace, address });
      await ip('link', 'add', rootEnd, 'type', 'veth', 'peer', 'name', hostEnd);
      rootEnds.push(rootEnd);
      await ip('link', 'set', rootEnd, 'master', bridge);
      await ip('link', 'set', rootEnd, 'up');
      await ip('link', 'set', hostEnd, 'netns', namespace);
      await ip('-n', namespace, 'addr', 'add', `${address}/24`, 'dev', hostEnd);
      await ip('-n', namespace, 'link', 'set', hostEnd, 'up');
      await ip('-n', namespace, 'link', 'set', 'lo', 'up');
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  return {
    bridge,
    rootAddress,
    hosts,
    async setLink(host, up) {
      const index = hosts.indexOf(host);
      await ip('-n', host.namespace, 'link', 'set', `qxv${tag}h${index}`, up ? 'up' : 'down');
    },
    destroy,
  };
}
