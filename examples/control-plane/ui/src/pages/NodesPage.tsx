import { nodeConnectCommands } from '@quantix/client';
import { type FormEvent, type ReactNode, useState } from 'react';
import { client } from '../api.js';
import {
  Ago,
  Badge,
  ConfirmButton,
  DeleteButton,
  Empty,
  ErrorAlert,
  Field,
  LoadNote,
  TableHead,
} from '../components.js';
import { describeHost, describeNodeVms } from '../format.js';
import { SAFETY_REFRESH_MS, useAction, usePoll } from '../hooks.js';
import type { NodeDetail, RegisteredNode } from '../types.js';
import { PoolStateCells } from './PoolsPage.js';

export function NodesPage() {
  // The list, then each node's detail (pools with their state on it, and the live `connected`),
  // with its VMs (how many there are, how many run).
  const nodes = usePoll(
    async (signal) => {
      const [{ nodes: list }, { vms }] = await Promise.all([
        client.request('listNodes', { signal }),
        client.request('listVms', { signal }),
      ]);
      const details = await Promise.all(list.map((n) => client.request('getNode', { params: { id: n.id }, signal })));
      return details.map((node) => ({ ...node, vms: vms.filter((vm) => vm.nodeId === node.id) }));
    },
    { intervalMs: SAFETY_REFRESH_MS, deps: [], live: { kinds: ['node', 'pool', 'vm'] } },
  );

  return (
    <section aria-labelledby="nodes-heading">
      <h1 id="nodes-heading">Nodes</h1>
      <p className="lede">
        Hypervisor hosts running the node daemon, the control-plane replica each one is connected to, and the pools each
        one holds.
      </p>
      <LoadNote polled={nodes} what="nodes" />
      {nodes.data?.length === 0 && <Empty>No nodes yet. Register one below and start its daemon.</Empty>}
      {nodes.data?.map((node) => (
        <article key={node.id} className="card" aria-labelledby={`node-${node.id}`}>
          <header className="card-head">
            <h2 id={`node-${node.id}`}>{node.hostname}</h2>
            {node.connected ? <Badge tone="ok">Connected</Badge> : <Badge tone="bad">Disconnected</Badge>}
          </header>
          <dl className="facts">
            <dt>ID</dt>
            <dd>
              <code>{node.id}</code>
            </dd>
            <dt>Replica</dt>
            <dd>{node.replicaId ? <code>{node.replicaId}</code> : '—'}</dd>
            {/* Recorded as it connects or drops: for a connected node, when it connected. */}
            <dt>{node.connected ? 'Connected since' : 'Last seen'}</dt>
            <dd>
              <Ago iso={node.lastSeenAt} />
            </dd>
            <dt>Host</dt>
            <dd>{describeHost(node.capabilities)}</dd>
            <dt>VMs</dt>
            <dd>{describeNodeVms(node.capabilities, node.vms)}</dd>
            <dt>Address</dt>
            <dd>{node.address ?? '—'}</dd>
            <dt>Agent</dt>
            <dd>{node.agentVersion ?? '—'}</dd>
            {Object.keys(node.labels).length > 0 && (
              <>
                <dt>Labels</dt>
                <dd>
                  {Object.entries(node.labels)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(', ')}
                </dd>
              </>
            )}
          </dl>
          {!node.connected && (
            <p className="alert alert-warn">
              The node daemon is not connected: its pools keep their last reported state, and no VM can be created or
              started on it until it reconnects.
            </p>
          )}
          {node.pools.length === 0 ? (
            <Empty>No pool is assigned to this node.</Empty>
          ) : (
            <table className="table" aria-label={`Pools on ${node.hostname}`}>
              <TableHead columns={['Pool', 'State', 'Mounted at', 'Capacity', 'Reported']} />
              <tbody>
                {node.pools.map(({ pool, state }) => (
                  <tr key={pool.id} aria-label={pool.name}>
                    <th scope="row">
                      {pool.name} <span className="muted small">({pool.type})</span>
                    </th>
                    <PoolStateCells state={state} />
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <NodeActions node={node} onChange={nodes.reload} />
        </article>
      ))}
      <RegisterNode onRegistered={nodes.reload} />
    </section>
  );
}

function RegisterNode({ onRegistered }: { onRegistered: () => void }) {
  const [hostname, setHostname] = useState('');
  const { busy, error, fieldErrors, run } = useAction();
  const [result, setResult] = useState<RegisteredNode | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const registered = await run(() => client.request('createNode', { body: { hostname } }));
    if (!registered) return;
    setResult(registered);
    setHostname('');
    onRegistered();
  };

  return (
    <form className="panel" onSubmit={submit} aria-labelledby="register-heading">
      <h2 id="register-heading">Register a node</h2>
      <Field label="Host name" error={fieldErrors.hostname}>
        {(props) => <input {...props} value={hostname} onChange={(e) => setHostname(e.target.value)} />}
      </Field>
      <ErrorAlert error={error} title="Node not registered" />
      <button type="submit" className="primary" disabled={busy || !hostname}>
        {busy ? 'Registering…' : 'Register'}
      </button>
      {result && (
        <TokenOnce nodeId={result.node.id} token={result.token}>
          Node <code>{result.node.id}</code> registered.
        </TokenOnce>
      )}
    </form>
  );
}

/**
 * A node's new token (the one before opens nothing from then on, and the connection opened with
 * it is closed) and its removal (refused while VMs are on it), each confirmed first.
 */
function NodeActions({ node, onChange }: { node: NodeDetail; onChange: () => void }) {
  const { busy, error, run } = useAction({ after: onChange });
  const [token, setToken] = useState<string | null>(null);
  const issueToken = async () => {
    const issued = await run(() => client.request('issueNodeToken', { params: { id: node.id } }));
    if (issued) setToken(issued.token);
  };
  return (
    <>
      <div className="buttons">
        <ConfirmButton
          label="New token"
          accessibleName={`New token for ${node.hostname}`}
          confirmLabel="Confirm new token"
          busyLabel="Issuing…"
          detail={`The current token stops working${node.connected ? ' and the node is disconnected until its daemon uses the new one' : ''}.`}
          disabled={busy}
          busy={busy}
          onConfirm={issueToken}
        />
        <DeleteButton
          name={node.hostname}
          detail="Its connection is closed and its token opens nothing; refused while VMs are on it."
          disabled={busy}
          busy={busy}
          onDelete={() => run(() => client.request('deleteNode', { params: { id: node.id } }))}
        />
      </div>
      <ErrorAlert error={error} title={`${node.hostname} not changed`} />
      {token && (
        <TokenOnce nodeId={node.id} token={token}>
          <code>{node.hostname}</code> has a new token. A <code>quantix-node</code> already running with{' '}
          <code>--token-file</code> reads that file again: it connects once the new token is there.
        </TokenOnce>
      )}
    </>
  );
}

/** A token shown this once, with what to run on the node: the same commands `quantix nodes add` prints. */
function TokenOnce({ nodeId, token, children }: { nodeId: string; token: string; children: ReactNode }) {
  // One --url per replica that has its own (the node moves between them), else this page's origin.
  const replicas = usePoll((signal) => client.request('listReplicas', { signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [],
  });
  const { installToken, startDaemon } = nodeConnectCommands({
    url: window.location.origin,
    replicas: replicas.data?.replicas,
    nodeId,
    token,
  });
  return (
    <div role="status" className="token-once">
      <p>
        {children} The token is shown this once; on the node, put it in a file only root can read (never on a command
        line, where every user sees it) and start the daemon:
      </p>
      <pre>
        {`${installToken}\n`}
        {startDaemon}
      </pre>
    </div>
  );
}
