import { useState } from 'react';
import { ApiError, client } from '../api.js';
import {
  Ago,
  Badge,
  DeleteButton,
  Empty,
  ErrorAlert,
  Field,
  Link,
  LoadNote,
  TableHead,
  type Tone,
} from '../components.js';
import { formatBytes } from '../format.js';
import { SAFETY_REFRESH_MS, useAction, useLocation, useNodeList, usePoll } from '../hooks.js';
import { applyToVms } from '../live.js';
import type { VmRow } from '../types.js';
import { VmAddresses } from './NetworkStep.js';

const STATE_TONE: Record<VmRow['state'], Tone> = {
  creating: 'busy',
  running: 'ok',
  stopped: 'idle',
  paused: 'warn',
  error: 'bad',
  deleting: 'warn',
};

export function VmsPage() {
  const { search } = useLocation();
  const created = new URLSearchParams(search).get('created');
  const vms = usePoll((signal) => client.request('listVms', { signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [],
    live: { kinds: ['vm'], apply: applyToVms },
  });
  const nodes = useNodeList();
  const images = usePoll((signal) => client.request('listImages', { query: { limit: 1000 }, signal }), {
    intervalMs: 30_000,
    deps: [],
  });
  const nodeById = new Map(nodes.data?.nodes.map((n) => [n.id, n]));
  const imageName = (id: string | null) => (id ? (images.data?.images.find((i) => i.id === id)?.name ?? id) : '—');

  return (
    <section aria-labelledby="vms-heading">
      <div className="page-head">
        <h1 id="vms-heading">VMs</h1>
        <Link to="/vms/new" className="button primary">
          Create VM
        </Link>
      </div>
      {created && (
        <p role="status" className="alert alert-ok">
          VM {created} created.
        </p>
      )}
      <LoadNote polled={vms} what="VMs" />
      {vms.data?.vms.length === 0 && <Empty>No VMs yet.</Empty>}
      {vms.data && vms.data.vms.length > 0 && (
        <table className="table" aria-label="VMs">
          <TableHead
            columns={['Name', 'State', 'Node', 'Addresses', 'CPU', 'Memory', 'Disk', 'Boot image', 'Created', '']}
          />
          <tbody>
            {vms.data.vms.map((vm) => {
              const node = nodeById.get(vm.nodeId);
              return (
                <tr key={vm.id} aria-label={vm.name} className={vm.name === created ? 'highlight' : undefined}>
                  <th scope="row">{vm.name}</th>
                  <td>
                    <Badge tone={STATE_TONE[vm.state]}>{vm.state[0]?.toUpperCase() + vm.state.slice(1)}</Badge>
                    {vm.error && <p className="reason bad">{vm.error}</p>}
                  </td>
                  <td>
                    {node?.hostname ?? vm.nodeId}
                    {node && node.connectionState !== 'connected' && (
                      <div className="muted small">node disconnected</div>
                    )}
                  </td>
                  <td>
                    <VmAddresses vm={vm} />
                  </td>
                  <td>{vm.cpu}</td>
                  <td>{formatBytes(vm.memoryMiB * 1024 * 1024)}</td>
                  <td>{vm.disks.map((d) => `${d.sizeGiB} GiB`).join(', ') || '—'}</td>
                  <td>{imageName(vm.bootImageId)}</td>
                  <td>
                    <Ago iso={vm.createdAt} />
                  </td>
                  <td className="actions">
                    <VmActions vm={vm} onChange={vms.reload} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

function VmActions({ vm, onChange }: { vm: VmRow; onChange: () => void }) {
  const [doing, setDoing] = useState<string | null>(null);
  const action = useAction({ after: onChange });
  const busy = action.busy ? doing : null;
  const error = action.error;
  const id = encodeURIComponent(vm.id);
  const act = (label: string, work: () => Promise<unknown>) => {
    setDoing(label);
    return action.run(work);
  };
  const transient = vm.state === 'creating' || vm.state === 'deleting';
  // A paused guest (paused outside Quantix, or by QEMU when its disk could not be written) runs
  // on when started; it cannot shut itself down, so it is powered off instead.
  const paused = vm.state === 'paused';
  const start = paused ? 'Resume' : 'Start';
  // A guest that ignored the shutdown (VM_DID_NOT_STOP says "stop it with force"): the power off is offered.
  const ignoredStop = vm.state === 'running' && error instanceof ApiError && error.code === 'VM_DID_NOT_STOP';
  return (
    <>
      {vm.state !== 'running' && (
        <button
          type="button"
          disabled={busy !== null || transient}
          aria-label={`${start} ${vm.name}`}
          onClick={() => act('start', () => client.request('startVm', { params: { id } }))}
        >
          {busy === 'start' ? (paused ? 'Resuming…' : 'Starting…') : start}
        </button>
      )}
      {(paused || ignoredStop) && (
        <button
          type="button"
          disabled={busy !== null}
          aria-label={`Power off ${vm.name}`}
          onClick={() => act('power off', () => client.request('stopVm', { params: { id }, body: { force: true } }))}
        >
          {busy === 'power off' ? 'Powering off…' : 'Power off'}
        </button>
      )}
      {vm.state === 'running' && (
        <button
          type="button"
          disabled={busy !== null}
          aria-label={`Stop ${vm.name}`}
          onClick={() => act('stop', () => client.request('stopVm', { params: { id }, body: { force: false } }))}
        >
          {busy === 'stop' ? 'Stopping…' : 'Stop'}
        </button>
      )}
      {vm.state === 'running' && (
        <>
          <button
            type="button"
            disabled={busy !== null}
            aria-label={`Reboot ${vm.name}`}
            onClick={() => act('reboot', () => client.request('rebootVm', { params: { id } }))}
          >
            {busy === 'reboot' ? 'Rebooting…' : 'Reboot'}
          </button>

          <Link to={`/vms/console?id=${id}&type=serial`} className="button" aria-label={`Console of ${vm.name}`}>
            Console
          </Link>
          <Link to={`/vms/console?id=${id}&type=vnc`} className="button" aria-label={`Display of ${vm.name}`}>
            Display
          </Link>
        </>
      )}
      {vm.cdroms.length > 0 && (
        // An installer's ISO, once the OS is on the disk: the VM boots from its disk after.
        <button
          type="button"
          disabled={busy !== null || transient}
          aria-label={`Eject the ISO of ${vm.name}`}
          title={`Take ${vm.cdroms.map((c) => c.relPath).join(', ')} out of its CD-ROM drive`}
          onClick={() => act('eject', () => client.request('ejectVmCdroms', { params: { id } }))}
        >
          {busy === 'eject' ? 'Ejecting…' : 'Eject ISO'}
        </button>
      )}
      {vm.cdroms.length === 0 && vm.disks.every((disk) => disk.imageId === null) && (
        // Made from an ISO (its disk was made blank) and ejected since: its drive is empty. A VM
        // made from a cloud image has an overlay of it, and its only drive holds its seed.
        <InsertIsoButton vm={vm} disabled={busy !== null || transient} onChange={onChange} />
      )}
      {vm.state === 'stopped' && <ResizeButton vm={vm} disabled={busy !== null} onChange={onChange} />}
      <DeleteButton
        name={vm.name}
        disabled={busy !== null || transient}
        busy={busy === 'delete'}
        detail={`Delete ${vm.name} and its disks (${vm.disks.map((d) => d.relPath).join(', ') || 'none'})? The image it was made from stays.`}
        onDelete={() => act('delete', () => client.request('deleteVm', { params: { id } }))}
      />
      <ErrorAlert error={error} />
    </>
  );
}

/** A stopped VM's vCPUs and memory, changed in a small form: they take effect at its next start. */
function ResizeButton({ vm, disabled, onChange }: { vm: VmRow; disabled: boolean; onChange: () => void }) {
  const [draft, setDraft] = useState<{ cpu: string; memoryMiB: string } | null>(null);
  const action = useAction({ after: onChange });
  if (draft === null) {
    return (
      <button
        type="button"
        disabled={disabled}
        aria-label={`Resize ${vm.name}`}
        onClick={() => setDraft({ cpu: String(vm.cpu), memoryMiB: String(vm.memoryMiB) })}
      >
        Resize
      </button>
    );
  }
  const save = async () => {
    const resized = await action.run(() =>
      client.request('resizeVm', {
        params: { id: encodeURIComponent(vm.id) },
        body: { cpu: Number(draft.cpu), memoryMiB: Number(draft.memoryMiB) },
      }),
    );
    if (resized) setDraft(null);
  };
  return (
    <form
      className="row-form"
      aria-label={`Resize ${vm.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <Field label="vCPUs" error={action.fieldErrors.cpu}>
        {(props) => (
          <input
            {...props}
            inputMode="numeric"
            size={4}
            value={draft.cpu}
            onChange={(e) => setDraft({ ...draft, cpu: e.target.value })}
          />
        )}
      </Field>
      <Field label="Memory (MiB)" error={action.fieldErrors.memoryMiB}>
        {(props) => (
          <input
            {...props}
            inputMode="numeric"
            size={7}
            value={draft.memoryMiB}
            onChange={(e) => setDraft({ ...draft, memoryMiB: e.target.value })}
          />
        )}
      </Field>
      <button type="submit" className="primary" disabled={action.busy}>
        {action.busy ? 'Saving…' : 'Save'}
      </button>
      <button type="button" onClick={() => setDraft(null)}>
        Cancel
      </button>
      <ErrorAlert error={action.error} />
    </form>
  );
}

/** A ready ISO on the VM's node put into its empty CD-ROM drive: drivers, a rescue system, its installer again. */
function InsertIsoButton({ vm, disabled, onChange }: { vm: VmRow; disabled: boolean; onChange: () => void }) {
  const [choosing, setChoosing] = useState(false);
  const [imageId, setImageId] = useState('');
  const action = useAction({ after: onChange });
  // Only while choosing: a list of VMs does not ask for every node's ISOs.
  const isos = usePoll(
    (signal) => client.request('listAvailableImages', { query: { nodeId: vm.nodeId, kind: 'iso' }, signal }),
    { intervalMs: 30_000, deps: [vm.nodeId], enabled: choosing },
  );
  if (!choosing) {
    return (
      <button
        type="button"
        disabled={disabled}
        aria-label={`Insert an ISO into ${vm.name}`}
        onClick={() => setChoosing(true)}
      >
        Insert ISO
      </button>
    );
  }
  const ready = (isos.data?.images ?? []).filter((iso) => iso.status === 'ready' && iso.imageId !== null);
  const insert = async () => {
    const inserted = await action.run(() =>
      client.request('insertVmCdrom', { params: { id: encodeURIComponent(vm.id) }, body: { imageId } }),
    );
    if (inserted) setChoosing(false);
  };
  return (
    <form
      className="row-form"
      aria-label={`Insert an ISO into ${vm.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        void insert();
      }}
    >
      <Field label="ISO" error={action.fieldErrors.imageId}>
        {(props) => (
          <select {...props} value={imageId} onChange={(e) => setImageId(e.target.value)}>
            <option value="">
              {isos.data ? (ready.length > 0 ? 'Choose an ISO' : 'No ready ISO on its node') : 'Loading…'}
            </option>
            {ready.map((iso) => (
              <option key={iso.key} value={iso.imageId ?? ''}>
                {iso.name}
              </option>
            ))}
          </select>
        )}
      </Field>
      <button type="submit" className="primary" disabled={action.busy || imageId === ''}>
        {action.busy ? 'Inserting…' : 'Insert'}
      </button>
      <button type="button" onClick={() => setChoosing(false)}>
        Cancel
      </button>
      <ErrorAlert error={action.error} />
    </form>
  );
}
