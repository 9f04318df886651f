import type { HostNetwork } from '@quantix/core';
import { client } from '../api.js';
import { Empty, Field, LoadNote } from '../components.js';
import { usePoll } from '../hooks.js';
import type { VmRow } from '../types.js';

/** A NIC as the wizard holds it: `default` for a libvirt network, `bridge:br0` for a host bridge. */
export type NicChoice = string;

const choiceOf = (network: HostNetwork): NicChoice =>
  network.attachment === 'bridge' ? `bridge:${network.name}` : network.name;

/** The NIC choices as POST /vms takes them. */
export function nicsForRequest(choices: readonly NicChoice[]): { attachment: 'network' | 'bridge'; source: string }[] {
  return choices.map((choice) =>
    choice.startsWith('bridge:')
      ? { attachment: 'bridge', source: choice.slice('bridge:'.length) }
      : { attachment: 'network', source: choice },
  );
}

/** What the wizard starts with before the user touches the step: one NIC on `default` when the node has it active. */
export function defaultNics(networks: readonly HostNetwork[] | undefined): NicChoice[] {
  const nat = networks?.find((n) => n.attachment === 'network' && n.name === 'default' && n.active);
  return nat ? [choiceOf(nat)] : [];
}

export function useNodeNetworks(nodeId: string) {
  return usePoll((signal) => client.request('listNodeNetworks', { params: { id: nodeId }, signal }), {
    intervalMs: 10_000,
    deps: [nodeId],
    enabled: Boolean(nodeId),
  });
}

/**
 * The wizard's Network step: the VM's NICs in order (the first is the guest's eth0), each on one
 * of the node's libvirt networks or host bridges. Every NIC is virtio; its MAC is generated when
 * the VM is created and kept for its life.
 */
export function NetworkStep({
  networks,
  nics,
  onChange,
  error,
}: {
  networks: ReturnType<typeof useNodeNetworks>;
  nics: readonly NicChoice[];
  onChange: (nics: NicChoice[]) => void;
  error: string | undefined;
}) {
  const offered = networks.data?.networks ?? [];
  const label = (n: HostNetwork) =>
    `${n.attachment === 'bridge' ? `bridge ${n.name}` : `${n.name} (${n.forward ?? 'network'})`}${n.addresses.length ? ` — ${n.addresses.join(', ')}` : ''}${n.active ? '' : ' — not started'}`;
  const first = offered.find((n) => n.active);
  return (
    <>
      <LoadNote polled={networks} what="the node's networks" />
      {networks.data && offered.length === 0 && (
        <Empty>This node has no libvirt networks or bridges: the VM will have no network.</Empty>
      )}
      {nics.length === 0 && offered.length > 0 && <p className="muted">No NICs: the VM will have no network.</p>}
      <ol className="nics">
        {nics.map((nic, index) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: a NIC's place in the list is what it is (eth0, eth1, …).
          <li key={index}>
            <Field
              label={`NIC ${index + 1} (eth${index})`}
              error={index === 0 ? error : undefined}
              hint="virtio; its MAC address is generated when the VM is made"
            >
              {(props) => (
                <select
                  {...props}
                  value={nic}
                  onChange={(e) => onChange(nics.map((n, i) => (i === index ? e.target.value : n)))}
                >
                  {!offered.some((n) => choiceOf(n) === nic) && <option value={nic}>{nic} (not on this node)</option>}
                  {offered.map((n) => (
                    <option key={choiceOf(n)} value={choiceOf(n)} disabled={!n.active}>
                      {label(n)}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <button type="button" onClick={() => onChange(nics.filter((_, i) => i !== index))}>
              Remove NIC {index + 1}
            </button>
          </li>
        ))}
      </ol>
      {first && nics.length < 16 && (
        <button type="button" onClick={() => onChange([...nics, choiceOf(first)])}>
          Add a NIC
        </button>
      )}
    </>
  );
}

/** A running VM's IPv4 addresses as its node reports them (DHCP lease or guest agent). */
export function VmAddresses({ vm }: { vm: VmRow }) {
  const reachable = vm.state === 'running' && vm.nics.length > 0;
  const addresses = usePoll((signal) => client.request('getVmAddresses', { params: { id: vm.id }, signal }), {
    intervalMs: 5000,
    deps: [vm.id, vm.state],
    enabled: reachable,
  });
  if (!reachable) return <>—</>;
  const ipv4 = (addresses.data?.addresses ?? []).filter((a) => a.family === 'ipv4');
  if (ipv4.length === 0) return <span className="muted">{addresses.data ? 'waiting for an address' : '…'}</span>;
  return <>{ipv4.map((a) => a.address).join(', ')}</>;
}
