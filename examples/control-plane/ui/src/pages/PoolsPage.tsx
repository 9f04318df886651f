import { type FormEvent, useState } from 'react';
import { client } from '../api.js';
import {
  Ago,
  Badge,
  Capacity,
  CheckGroup,
  DeleteButton,
  Empty,
  ErrorAlert,
  Field,
  LoadNote,
  NameAndDescription,
  TableHead,
  type Tone,
} from '../components.js';
import { describePoolSource, poolConfigWith } from '../format.js';
import { SAFETY_REFRESH_MS, useAction, useNodeList, usePoll } from '../hooks.js';
import type { Pool, PoolState, QNode } from '../types.js';

const STATUS_TONE: Record<PoolState['status'], Tone> = {
  active: 'ok',
  pending: 'busy',
  inactive: 'idle',
  unavailable: 'warn',
  error: 'bad',
  // The node is not connected: what it said last may no longer hold.
  unknown: 'idle',
};

/** One node's report on one pool: state (and why, when not active), mount path, capacity, last check. */
export function PoolStateCells({ state }: { state: PoolState | null }) {
  if (!state) {
    return (
      <>
        <td>
          <Badge tone="idle">Not reported</Badge>
          <p className="reason">The node has not reported this pool yet (is its daemon connected?).</p>
        </td>
        <td>—</td>
        <td>—</td>
        <td>never</td>
      </>
    );
  }
  return (
    <>
      <td>
        <PoolStatusBadge status={state.status} />
        {state.lastError && <p className="reason bad">{state.lastError}</p>}
      </td>
      <td>{state.mountPath ? <code className="path">{state.mountPath}</code> : '—'}</td>
      <td>
        <Capacity capacity={state.capacityBytes} available={state.availableBytes} />
      </td>
      <td>
        <Ago iso={state.checkedAt} />
        <div className="muted small">generation {state.syncedGeneration}</div>
      </td>
    </>
  );
}

export function PoolStatusBadge({ status }: { status: PoolState['status'] }) {
  return <Badge tone={STATUS_TONE[status]}>{status[0]?.toUpperCase() + status.slice(1)}</Badge>;
}

export function PoolsPage() {
  const pools = usePoll((signal) => client.request('listPools', { signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [],
    live: { kinds: ['pool'] },
  });
  const nodes = useNodeList();
  const hostname = (id: string) => nodes.data?.nodes.find((n) => n.id === id)?.hostname ?? id;

  return (
    <section aria-labelledby="pools-heading">
      <h1 id="pools-heading">Pools</h1>
      <p className="lede">
        Storage pool definitions, and what each assigned node reports about its pool: active, or unavailable and why.
      </p>
      <LoadNote polled={pools} what="pools" />
      {pools.data?.pools.length === 0 && <Empty>No pools yet. Add one below.</Empty>}
      {pools.data?.pools.map((pool) => (
        <article key={pool.id} className="card" aria-labelledby={`pool-${pool.id}`}>
          <header className="card-head">
            <h2 id={`pool-${pool.id}`}>{pool.name}</h2>
            <span className="muted">
              {pool.type} · {pool.shared ? 'shared' : 'node-local'} · holds {pool.contentTypes.join(', ')}
            </span>
          </header>
          {pool.description && <p>{pool.description}</p>}
          <dl className="facts">
            <dt>ID</dt>
            <dd>
              <code>{pool.id}</code>
            </dd>
            <dt>Source</dt>
            <dd>
              <code>{describePoolSource(pool.config)}</code>
            </dd>
            <dt>Assigned to</dt>
            <dd>{pool.nodeIds.length ? pool.nodeIds.map(hostname).join(', ') : 'no node'}</dd>
          </dl>
          <PoolStates pool={pool} hostname={hostname} />
          <PoolActions pool={pool} nodes={nodes.data?.nodes ?? []} onChange={pools.reload} />
        </article>
      ))}
      <NewPool nodes={nodes.data?.nodes ?? []} onCreated={pools.reload} />
    </section>
  );
}

/**
 * The pool changed in place: its name, description and content (Edit…), its nodes ("Assign
 * nodes…": the pool is pushed to the nodes added and taken from those removed); and its deletion
 * (its definition only; refused while images or VMs use it). A change made elsewhere meanwhile is
 * refused (VERSION_CONFLICT), not overwritten.
 */
function PoolActions({ pool, nodes, onChange }: { pool: Pool; nodes: QNode[]; onChange: () => void }) {
  const { busy, error, fieldErrors, run } = useAction({ after: onChange });
  const [assigning, setAssigning] = useState<string[] | null>(null);
  const [editing, setEditing] = useState(false);
  const save = async (event: FormEvent) => {
    event.preventDefault();
    const body = { nodeIds: assigning ?? [], expectedVersion: pool.version };
    if (await run(() => client.request('assignPoolNodes', { params: { id: pool.id }, body }))) setAssigning(null);
  };
  return (
    <>
      {editing ? (
        <EditPool
          pool={pool}
          onDone={() => {
            setEditing(false);
            onChange();
          }}
        />
      ) : assigning ? (
        <form onSubmit={save} aria-label={`Nodes of ${pool.name}`}>
          <NodeChecks nodes={nodes} selected={assigning} onChange={setAssigning} error={fieldErrors.nodeIds} />
          <div className="buttons">
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Saving…' : 'Save nodes'}
            </button>
            <button type="button" onClick={() => setAssigning(null)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div className="buttons">
          <button type="button" aria-label={`Edit ${pool.name}`} disabled={busy} onClick={() => setEditing(true)}>
            Edit…
          </button>
          <button
            type="button"
            aria-label={`Assign nodes to ${pool.name}`}
            disabled={busy}
            onClick={() => setAssigning(pool.nodeIds)}
          >
            Assign nodes…
          </button>
          <DeleteButton
            name={pool.name}
            detail="Only its definition goes: the files stay where they are. Refused while images or VMs use it."
            disabled={busy}
            busy={busy}
            onDelete={() => run(() => client.request('deletePool', { params: { id: pool.id } }))}
          />
        </div>
      )}
      <ErrorAlert error={error} title={`${pool.name} not changed`} />
    </>
  );
}

function PoolStates({ pool, hostname }: { pool: Pool; hostname: (id: string) => string }) {
  const waiting = pool.nodeIds.filter((id) => !pool.nodeStates.some((s) => s.nodeId === id));
  if (pool.nodeStates.length === 0 && waiting.length === 0) return null;
  return (
    <table className="table" aria-label={`State of ${pool.name} per node`}>
      <TableHead columns={['Node', 'State', 'Mounted at', 'Capacity', 'Reported']} />
      <tbody>
        {pool.nodeStates.map((state) => (
          <tr key={state.nodeId} aria-label={hostname(state.nodeId)}>
            <th scope="row">{hostname(state.nodeId)}</th>
            <PoolStateCells state={state} />
          </tr>
        ))}
        {waiting.map((id) => (
          <tr key={id} aria-label={hostname(id)}>
            <th scope="row">{hostname(id)}</th>
            <PoolStateCells state={null} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function NewPool({ nodes, onCreated }: { nodes: QNode[]; onCreated: () => void }) {
  const [form, setForm] = useState({
    name: '',
    type: 'local',
    path: '',
    // A new node rarely has the directory yet: without it the pool is only "unavailable" there.
    createPath: true,
    server: '',
    exportPath: '',
    iso: true,
    images: true,
    shared: false,
    nodeIds: [] as string[],
  });
  const { busy, error, fieldErrors, run } = useAction();
  const [created, setCreated] = useState<string | null>(null);
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setCreated(null);
    const config =
      form.type === 'nfs'
        ? { server: form.server, export: form.exportPath }
        : { path: form.path, ...(form.createPath ? { create: true } : {}) };
    const pool = await run(() =>
      client.request('createPool', {
        body: {
          name: form.name,
          type: form.type,
          config,
          contentTypes: contentTypesOf(form),
          shared: form.shared,
          nodeIds: form.nodeIds,
        },
      }),
    );
    if (!pool) return;
    setCreated(`Pool ${pool.name} created.`);
    set({ name: '', path: '', server: '', exportPath: '', nodeIds: [] });
    onCreated();
  };

  return (
    <form className="panel" onSubmit={submit} aria-labelledby="new-pool-heading">
      <h2 id="new-pool-heading">Add a pool</h2>
      <div className="grid-2">
        <Field label="Pool name" error={fieldErrors.name}>
          {(props) => <input {...props} value={form.name} onChange={(e) => set({ name: e.target.value })} />}
        </Field>
        <Field label="Type" error={fieldErrors.type}>
          {(props) => (
            <select {...props} value={form.type} onChange={(e) => set({ type: e.target.value })}>
              <option value="local">Local directory</option>
              <option value="nfs">NFS</option>
            </select>
          )}
        </Field>
        {form.type === 'nfs' ? (
          <NfsFields value={form} onChange={set} error={fieldErrors.config} />
        ) : (
          <Field label="Directory" error={fieldErrors.config}>
            {(props) => (
              <input
                {...props}
                value={form.path}
                placeholder="/var/lib/quantix/images"
                onChange={(e) => set({ path: e.target.value })}
              />
            )}
          </Field>
        )}
      </div>
      {form.type === 'local' && (
        <label className="check">
          <input type="checkbox" checked={form.createPath} onChange={(e) => set({ createPath: e.target.checked })} />{' '}
          Make the directory on each node where it is missing
        </label>
      )}
      <PoolContentChecks value={form} onChange={set} error={fieldErrors.contentTypes} />
      <NodeChecks
        nodes={nodes}
        selected={form.nodeIds}
        onChange={(nodeIds) => set({ nodeIds })}
        error={fieldErrors.nodeIds}
      />
      <ErrorAlert error={error} title="Pool not created" />
      {created && (
        <p role="status" className="ok">
          {created}
        </p>
      )}
      <button type="submit" className="primary" disabled={busy}>
        {busy ? 'Creating…' : 'Add pool'}
      </button>
    </form>
  );
}

/** An NFS pool's server and export (Add a pool; Edit). */
function NfsFields({
  value,
  onChange,
  error,
}: {
  value: { server: string; exportPath: string };
  onChange: (patch: { server?: string; exportPath?: string }) => void;
  error: string | undefined;
}) {
  return (
    <>
      <Field label="NFS server" error={error}>
        {(props) => <input {...props} value={value.server} onChange={(e) => onChange({ server: e.target.value })} />}
      </Field>
      <Field label="Export">
        {(props) => (
          <input {...props} value={value.exportPath} onChange={(e) => onChange({ exportPath: e.target.value })} />
        )}
      </Field>
    </>
  );
}

/** "Assigned nodes": a checkbox per registered node. */
function NodeChecks({
  nodes,
  selected,
  onChange,
  error,
}: {
  nodes: QNode[];
  selected: string[];
  onChange: (nodeIds: string[]) => void;
  error: string | undefined;
}) {
  return (
    <CheckGroup legend="Assigned nodes" error={error}>
      {nodes.length === 0 && <span className="muted">No nodes registered.</span>}
      {nodes.map((node) => (
        <label key={node.id}>
          <input
            type="checkbox"
            checked={selected.includes(node.id)}
            onChange={(e) =>
              onChange(e.target.checked ? [...selected, node.id] : selected.filter((id) => id !== node.id))
            }
          />{' '}
          {node.hostname}
        </label>
      ))}
    </CheckGroup>
  );
}

/** What a pool holds and whether it is shared, as the "Holds" checkboxes set them. */
interface PoolContent {
  iso: boolean;
  images: boolean;
  shared: boolean;
}

/** The `contentTypes` of the API from the "Holds" checkboxes. */
function contentTypesOf({ iso, images }: PoolContent): ('iso' | 'images')[] {
  return [...(iso ? (['iso'] as const) : []), ...(images ? (['images'] as const) : [])];
}

/** "Holds": ISOs, cloud images and VM disks, and whether every assigned node sees the same files. */
function PoolContentChecks({
  value,
  onChange,
  error,
}: {
  value: PoolContent;
  onChange: (patch: Partial<PoolContent>) => void;
  error: string | undefined;
}) {
  return (
    <CheckGroup legend="Holds" error={error}>
      <label>
        <input type="checkbox" checked={value.iso} onChange={(e) => onChange({ iso: e.target.checked })} /> ISOs
      </label>
      <label>
        <input type="checkbox" checked={value.images} onChange={(e) => onChange({ images: e.target.checked })} /> Cloud
        images and VM disks
      </label>
      <label>
        <input type="checkbox" checked={value.shared} onChange={(e) => onChange({ shared: e.target.checked })} /> Shared
        (every assigned node sees the same files)
      </label>
    </CheckGroup>
  );
}

/**
 * The pool's name, description, content and sharing, and where it is (a local pool's directory,
 * an NFS pool's server and export: a typo fixed without deleting the pool), changed in place
 * against the version shown.
 */
function EditPool({ pool, onDone }: { pool: Pool; onDone: () => void }) {
  const text = (key: string) => (typeof pool.config[key] === 'string' ? (pool.config[key] as string) : '');
  const place = {
    path: text('path'),
    createPath: pool.config.create === true,
    server: text('server'),
    exportPath: text('export'),
  };
  const [form, setForm] = useState({
    name: pool.name,
    description: pool.description ?? '',
    iso: pool.contentTypes.includes('iso'),
    images: pool.contentTypes.includes('images'),
    shared: pool.shared,
    ...place,
  });
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));
  const { busy, error, fieldErrors, run } = useAction();
  const nfs = pool.type === 'nfs';
  const save = async (event: FormEvent) => {
    event.preventDefault();
    const moved = nfs
      ? form.server !== place.server || form.exportPath !== place.exportPath
      : form.path !== place.path || form.createPath !== place.createPath;
    // The whole config is replaced: what the form does not show (a mount point, a depth) is kept.
    const config = poolConfigWith(
      pool.config,
      nfs ? { server: form.server, export: form.exportPath } : { path: form.path, create: form.createPath },
    );
    const body = {
      name: form.name,
      description: form.description,
      contentTypes: contentTypesOf(form),
      shared: form.shared,
      // Sent only when changed: a pool VMs use cannot move (IN_USE), but its name can change.
      ...(moved ? { config } : {}),
      expectedVersion: pool.version,
    };
    if (await run(() => client.request('updatePool', { params: { id: pool.id }, body }))) onDone();
  };
  return (
    <form onSubmit={save} aria-label={`Edit ${pool.name}`}>
      <NameAndDescription what="Pool" value={form} onChange={set} errors={fieldErrors} />
      {nfs ? (
        <div className="grid-2">
          <NfsFields value={form} onChange={set} error={fieldErrors.config} />
        </div>
      ) : (
        <>
          <Field label="Directory" error={fieldErrors.config}>
            {(props) => <input {...props} value={form.path} onChange={(e) => set({ path: e.target.value })} />}
          </Field>
          <label className="check">
            <input type="checkbox" checked={form.createPath} onChange={(e) => set({ createPath: e.target.checked })} />{' '}
            Make the directory on each node where it is missing
          </label>
        </>
      )}
      <PoolContentChecks value={form} onChange={set} error={fieldErrors.contentTypes ?? fieldErrors.shared} />
      <ErrorAlert error={error} title={`${pool.name} not changed`} />
      <div className="buttons">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}
