import { type FormEvent, useRef, useState } from 'react';
import { ApiError, client, type Upload, uploadFile } from '../api.js';
import {
  Ago,
  ConfirmButton,
  DeleteButton,
  Empty,
  ErrorAlert,
  Field,
  LoadNote,
  NameAndDescription,
  NodeOptions,
  PathText,
  PhaseBadge,
  Progress,
  TableHead,
} from '../components.js';
import { formatBytes, KIND_LABEL, osLabel, osProvenance, uploadKindOf } from '../format.js';
import { SAFETY_REFRESH_MS, useAction, useLiveEvents, useNodeList, usePoll } from '../hooks.js';
import { applyToImages } from '../live.js';
import type { ImageRecord, ImageRow, Pool } from '../types.js';
import { canFollow, type Follow, FollowBadge, goldenIdOf, UpstreamButton, useFollows } from './GoldenImages.js';
import { ImageImport } from './ImageImport.js';

const PAGE_SIZE = 50;

/** Set by the control plane on every image a download made from a URL (the source it resumes from). */
const SOURCE_URL_LABEL = 'quantix.io/source-url';
/** What the ISO inspector found of an ISO's boot record (core's ISO_BOOT_LABEL): `none` is a data disc. */
const ISO_BOOT_LABEL = 'iso.quantix.io/boot';

export function ImagesPage() {
  const [kind, setKind] = useState('');
  const [phase, setPhase] = useState('');
  const [text, setText] = useState('');
  const [nodeChoice, setNodeChoice] = useState<string | null>(null);
  const [offset, setOffset] = useState(0);

  const nodes = useNodeList();
  const pools = usePoll((signal) => client.request('listPools', { signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [],
  });
  // Paths differ per node (each mounts a pool where it likes): show them for one chosen node.
  const nodeList = nodes.data?.nodes ?? [];
  const nodeId = nodeChoice ?? (nodeList.find((n) => n.connectionState === 'connected') ?? nodeList[0])?.id ?? '';
  const images = usePoll(
    (signal) =>
      client.request('listImages', {
        query: { ...(kind ? { kind: kind as ImageRow['kind'] } : {}), phase, text, nodeId, limit: PAGE_SIZE, offset },
        signal,
      }),
    {
      // Progress and phases arrive as live events and are applied in place: no polling.
      intervalMs: SAFETY_REFRESH_MS,
      deps: [kind, phase, text, nodeId, offset],
      live: { kinds: ['image'], apply: applyToImages },
    },
  );
  // A new phase changes more than the phase (size, path, checksum): that one image is fetched again.
  useLiveEvents((event) => {
    if (event.type !== 'image.phase' || !images.data?.images.some((i) => i.id === event.id)) return;
    client
      .request('getImage', { params: { id: event.id }, query: nodeId ? { nodeId } : {} })
      .then((fresh) =>
        images.mutate((page) => ({ ...page, images: page.images.map((i) => (i.id === fresh.id ? fresh : i)) })),
      )
      .catch(() => undefined); // gone meanwhile: the next load shows it
  });
  const poolName = (id: string | undefined) => pools.data?.pools.find((p) => p.id === id)?.name ?? id ?? '—';
  const follows = useFollows(images.data?.images);

  return (
    <section aria-labelledby="images-heading">
      <div className="page-head">
        <h1 id="images-heading">Images</h1>
        <RescanButton onDone={images.reload} />
      </div>
      <p className="lede">Cloud images and ISOs in every pool, with their state and where they are on a node.</p>

      <search className="filters" aria-label="Filter images">
        <Field label="Kind">
          {(props) => (
            <select
              {...props}
              value={kind}
              onChange={(e) => {
                setKind(e.target.value);
                setOffset(0);
              }}
            >
              <option value="">All</option>
              <option value="cloud">Cloud images</option>
              <option value="iso">ISOs</option>
            </select>
          )}
        </Field>
        <Field label="Phase">
          {(props) => (
            <select
              {...props}
              value={phase}
              onChange={(e) => {
                setPhase(e.target.value);
                setOffset(0);
              }}
            >
              <option value="">Any</option>
              <option value="ready">Ready</option>
              <option value="pending,downloading,verifying">Downloading</option>
              <option value="error">Error</option>
              <option value="missing">Missing</option>
            </select>
          )}
        </Field>
        <Field label="Search">
          {(props) => (
            <input
              {...props}
              type="search"
              value={text}
              placeholder="name, OS, label or file"
              onChange={(e) => {
                setText(e.target.value);
                setOffset(0);
              }}
            />
          )}
        </Field>
        <Field label="Paths on node">
          {(props) => (
            <select {...props} value={nodeId} onChange={(e) => setNodeChoice(e.target.value)}>
              <NodeOptions nodes={nodeList} />
            </select>
          )}
        </Field>
      </search>

      <LoadNote polled={images} what="images" />
      {images.data && (
        <ImageTable
          images={images.data.images}
          poolName={poolName}
          nodeName={nodeList.find((n) => n.id === nodeId)?.hostname ?? 'node'}
          follows={follows.data}
          pools={pools.data?.pools ?? []}
          onChange={images.reload}
          onFollowChange={follows.reload}
        />
      )}
      {images.data && images.data.total > PAGE_SIZE && (
        <div className="pager">
          <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}>
            Previous
          </button>
          <span>
            {offset + 1}–{Math.min(offset + PAGE_SIZE, images.data.total)} of {images.data.total}
          </span>
          <button
            type="button"
            disabled={offset + PAGE_SIZE >= images.data.total}
            onClick={() => setOffset(offset + PAGE_SIZE)}
          >
            Next
          </button>
        </div>
      )}
      {images.data && <p className="muted">{images.data.total} image(s)</p>}

      <div className="columns">
        <CatalogDownload pools={pools.data?.pools ?? []} onStarted={images.reload} />
        <FileUpload pools={pools.data?.pools ?? []} onUploaded={images.reload} />
        <ImageImport
          pools={poolsFor(pools.data?.pools ?? [], 'images')}
          poolOption={poolOption}
          onStarted={images.reload}
        />
      </div>
    </section>
  );
}

function ImageTable({
  images,
  poolName,
  nodeName,
  follows,
  pools,
  onChange,
  onFollowChange,
}: {
  images: ImageRow[];
  poolName: (id: string | undefined) => string;
  nodeName: string;
  follows: Map<string, Follow | null> | undefined;
  pools: Pool[];
  onChange: () => void;
  onFollowChange: () => void;
}) {
  if (images.length === 0) return <Empty>No images match. Download one from the catalog or upload an ISO below.</Empty>;
  return (
    <table className="table" aria-label="Images">
      <TableHead columns={['Name', 'Kind', 'Phase', 'Size', 'OS', 'Pool', `Path on ${nodeName}`, 'Updated', '']} />
      <tbody>
        {images.map((image) => (
          <ImageRowView
            key={image.id}
            image={image}
            poolName={poolName}
            follow={follows?.get(goldenIdOf(image)) ?? null}
            pools={pools}
            onChange={onChange}
            onFollowChange={onFollowChange}
          />
        ))}
      </tbody>
    </table>
  );
}

function ImageRowView({
  image,
  poolName,
  follow,
  pools,
  onChange,
  onFollowChange,
}: {
  image: ImageRow;
  poolName: (id: string | undefined) => string;
  follow: Follow | null;
  pools: Pool[];
  onChange: () => void;
  onFollowChange: () => void;
}) {
  const { busy, error, run: act } = useAction({ after: onChange });
  const [editing, setEditing] = useState(false);
  const downloading = ['pending', 'downloading', 'verifying'].includes(image.phase);
  // Made by a download (a catalog entry, an import, a copy), not an upload or a scan: it can be cancelled and retried.
  const downloaded = Boolean(image.catalogId || image.labels[SOURCE_URL_LABEL]);
  // The user's labels under the name; Quantix's own are in the edit form's hint.
  const ownLabels = Object.entries(image.labels).filter(([key]) => !isQuantixLabel(key));
  // While a download or deletion owns the row the API refuses a change (IMAGE_BUSY): no button then.
  const editable = ['ready', 'error', 'missing'].includes(image.phase);
  return (
    <>
      <tr aria-label={image.name}>
        <th scope="row">
          {image.name}
          {follow && <FollowBadge />}
          {image.catalogId && <div className="muted small">catalog: {image.catalogId}</div>}
          {ownLabels.length > 0 && (
            <div className="muted small">{ownLabels.map(([key, value]) => `${key}=${value}`).join(', ')}</div>
          )}
          {canFollow(image) && <UpstreamButton image={image} follow={follow} onChange={onFollowChange} />}
        </th>
        <td>
          {KIND_LABEL[image.kind]}
          {/* No VM boots from it (POST /vms refuses it): said here, not first in the wizard. */}
          {image.kind === 'iso' && image.labels[ISO_BOOT_LABEL] === 'none' && (
            <div className="muted small">data disc: no boot record</div>
          )}
        </td>
        <td className="phase-cell">
          <PhaseBadge phase={image.phase} />
          {downloading && <Progress progress={image.progress} label={`Download of ${image.name}`} />}
          {image.error && (
            <p className="reason bad">
              {image.error.message} <span className="code">({image.error.code})</span>
            </p>
          )}
        </td>
        <td>
          {formatBytes(image.sizeBytes)}
          {image.virtualSizeBytes ? (
            <div className="muted small">disk {formatBytes(image.virtualSizeBytes)}</div>
          ) : null}
        </td>
        <td>
          {osLabel(image.os)}
          {osProvenance(image.os) && <div className="muted small">{osProvenance(image.os)}</div>}
        </td>
        <td>{poolName(image.location?.poolId)}</td>
        <td>{image.path ? <PathText path={image.path} label={image.name} /> : <span className="muted">—</span>}</td>
        <td>
          <Ago iso={image.updatedAt} />
        </td>
        <td className="actions stacked">
          {downloading && downloaded && (
            <button
              type="button"
              disabled={busy}
              aria-label={`Cancel download of ${image.name}`}
              onClick={() => act(() => client.request('cancelImageDownload', { params: { id: image.id } }))}
            >
              Cancel
            </button>
          )}
          {image.phase === 'error' && downloaded && (
            <button
              type="button"
              disabled={busy}
              aria-label={`Retry download of ${image.name}`}
              onClick={() => act(() => client.request('retryImageDownload', { params: { id: image.id } }))}
            >
              Retry
            </button>
          )}
          {/* Its file went (removed by hand, a pool moved): fetched again from where it came from. */}
          {image.phase === 'missing' && downloaded && (
            <button
              type="button"
              disabled={busy}
              aria-label={`Download ${image.name} again`}
              onClick={() => act(() => client.request('retryImageDownload', { params: { id: image.id } }))}
            >
              Download again
            </button>
          )}
          {image.phase === 'ready' && image.location && (
            <button
              type="button"
              disabled={busy}
              aria-label={`Download ${image.name}`}
              onClick={() =>
                act(async () => {
                  // A link cannot carry the API token: a short-lived ticket for this image goes in its
                  // query, and the browser saves the file itself (streamed to disk, resumable).
                  const { path } = await client.request('createImageContentTicket', { params: { id: image.id } });
                  const link = document.createElement('a');
                  link.href = path;
                  link.download = '';
                  link.click();
                })
              }
            >
              Download
            </button>
          )}
          {/* One with no checksum yet (found by a scan) has it read on its node first. */}
          {image.phase === 'ready' && image.location && <CopyToPool image={image} pools={pools} onStarted={onChange} />}
          {(image.phase === 'ready' || image.error?.code === 'IMAGE_FILE_MISMATCH') && image.location && (
            // A file a verify found is not the one recorded (in error, out of use): verified again, or accepted.
            <VerifyButton image={image} onDone={onChange} />
          )}
          {editable && (
            <button
              type="button"
              aria-label={`Edit ${image.name}`}
              disabled={busy || editing}
              onClick={() => setEditing(true)}
            >
              Edit…
            </button>
          )}
          <DeleteButton
            name={image.name}
            disabled={busy || image.phase === 'deleting'}
            busy={busy}
            onDelete={() => act(() => client.request('deleteImage', { params: { id: image.id } }))}
          />
          <ErrorAlert error={error} />
          {noNodeCanRemove(error) && (
            // The pool is out of reach (unmounted, refused, its node gone): the record alone can go.
            <ConfirmButton
              label="Forget, keep file"
              accessibleName={`Forget ${image.name}, keeping its file`}
              confirmLabel="Confirm forget"
              busyLabel="Forgetting…"
              detail="The image goes from the list; its file stays in the pool."
              disabled={busy}
              busy={busy}
              onConfirm={() =>
                act(() => client.request('deleteImage', { params: { id: image.id }, query: { keepFile: 'true' } }))
              }
            />
          )}
        </td>
      </tr>
      {editing && (
        // A row of its own under the image: the form is wider than the actions column.
        <tr aria-label={`Editing ${image.name}`}>
          <td colSpan={9}>
            <EditImage
              image={image}
              onDone={(saved) => {
                setEditing(false);
                if (saved) onChange();
              }}
            />
          </td>
        </tr>
      )}
    </>
  );
}

/**
 * Labels set by Quantix itself (quantix.io and its subdomains): shown, never edited. The same test
 * as @quantix/control-plane's isQuantixLabel, which decides (the API refuses them); this bundle
 * cannot import the server's package.
 */
const isQuantixLabel = (key: string) => /^([^/]*\.)?quantix\.io\//.test(key);

/** Labels as the form's text holds them: `key=value`, one per line. */
const labelsText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');

/** The labels of `text`, or the first line that is not `key=value`. */
function parseLabels(text: string): { labels: Record<string, string> } | { badLine: string } {
  const labels: Record<string, string> = {};
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (!line) continue;
    const [key, value] = line.split(/=(.*)/s);
    if (!key?.trim() || value === undefined) return { badLine: line };
    labels[key.trim()] = value.trim();
  }
  return { labels };
}

/**
 * An image's name, description, labels and requirements, changed in place. Sent as a merge patch
 * with the version the form was opened on: a change made elsewhere meanwhile is refused
 * (VERSION_CONFLICT), not overwritten; labels removed from the text are sent as null.
 */
function EditImage({ image, onDone }: { image: ImageRow; onDone: (saved: boolean) => void }) {
  const own = Object.fromEntries(Object.entries(image.labels).filter(([key]) => !isQuantixLabel(key)));
  const quantixLabels = Object.entries(image.labels).filter(([key]) => isQuantixLabel(key));
  const [opened] = useState(() => ({ version: image.version, labels: own }));
  const [form, setForm] = useState({
    name: image.name,
    description: image.description,
    labels: labelsText(own),
    minCpu: String(image.requirements.minCpu),
    minMemoryMiB: String(image.requirements.minMemoryMiB),
    minDiskGiB: String(image.requirements.minDiskGiB),
    firmware: image.requirements.firmware,
  });
  const set = (patch: Partial<typeof form>) => setForm((f) => ({ ...f, ...patch }));
  const { busy, error, fieldErrors, run } = useAction();
  const parsed = parseLabels(form.labels);
  const labelsError =
    'badLine' in parsed ? `“${parsed.badLine}” is not key=value (one label per line).` : fieldErrors.labels;
  const save = async (event: FormEvent) => {
    event.preventDefault();
    if ('badLine' in parsed) return;
    const labels: Record<string, string | null> = { ...parsed.labels };
    for (const key of Object.keys(opened.labels)) if (!(key in parsed.labels)) labels[key] = null;
    const body = {
      name: form.name,
      description: form.description,
      labels,
      requirements: {
        minCpu: Number(form.minCpu),
        minMemoryMiB: Number(form.minMemoryMiB),
        minDiskGiB: Number(form.minDiskGiB),
        firmware: form.firmware,
      },
      expectedVersion: opened.version,
    };
    if (await run(() => client.request('updateImage', { params: { id: image.id }, body }))) onDone(true);
  };
  const number = (key: 'minCpu' | 'minMemoryMiB' | 'minDiskGiB', min: number) => (props: object) => (
    <input {...props} type="number" min={min} value={form[key]} onChange={(e) => set({ [key]: e.target.value })} />
  );
  return (
    <form onSubmit={save} aria-label={`Edit ${image.name}`}>
      <NameAndDescription what="Image" value={form} onChange={set} errors={fieldErrors} />
      <Field
        label="Labels"
        error={labelsError}
        hint={
          quantixLabels.length > 0
            ? `key=value, one per line. Set by Quantix, kept as they are: ${quantixLabels.map(([k, v]) => `${k}=${v}`).join(', ')}`
            : 'key=value, one per line'
        }
      >
        {(props) => (
          <textarea {...props} rows={3} value={form.labels} onChange={(e) => set({ labels: e.target.value })} />
        )}
      </Field>
      <fieldset>
        <legend>A VM of this image needs at least (0, any: nothing)</legend>
        <div className="grid-4">
          <Field label="vCPUs" error={fieldErrors.requirements}>
            {number('minCpu', 1)}
          </Field>
          <Field label="Memory (MiB)">{number('minMemoryMiB', 0)}</Field>
          <Field label="Disk (GiB)">{number('minDiskGiB', 0)}</Field>
          <Field label="Firmware">
            {(props) => (
              <select
                {...props}
                value={form.firmware}
                onChange={(e) => set({ firmware: e.target.value as typeof form.firmware })}
              >
                <option value="any">any</option>
                <option value="bios">BIOS</option>
                <option value="uefi">UEFI</option>
              </select>
            )}
          </Field>
        </div>
      </fieldset>
      <ErrorAlert error={error} title={`${image.name} not changed`} />
      <div className="buttons">
        <button type="submit" className="primary" disabled={busy || 'badLine' in parsed}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Whether a delete failed because no node can reach the image's pool now (deleting it with keepFile still can). */
function noNodeCanRemove(error: Error | null): boolean {
  return error instanceof ApiError && ['NODE_NOT_CONNECTED', 'POOL_NOT_ACTIVE_ON_NODE'].includes(error.code);
}

/** "Copy…" (to another pool): a pool holding this kind of image, other than the image's own, and Copy. */
function CopyToPool({ image, pools, onStarted }: { image: ImageRow; pools: Pool[]; onStarted: () => void }) {
  const [open, setOpen] = useState(false);
  const candidates = poolsFor(pools, image.kind === 'iso' ? 'iso' : 'images').filter(
    (p) => p.id !== image.location?.poolId,
  );
  const [chosen, setChosen] = useState('');
  const { busy, error, run } = useAction({ after: onStarted });
  const poolId = chosen || candidates[0]?.id || '';
  if (!open) {
    return (
      // A short label: the stacked actions column must keep the table inside a 1280 px window.
      <button
        type="button"
        aria-label={`Copy ${image.name} to pool`}
        title="Copy to another pool"
        onClick={() => setOpen(true)}
      >
        Copy…
      </button>
    );
  }
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const copy = await run(() => client.request('copyImage', { params: { id: image.id }, body: { poolId } }));
    if (copy) setOpen(false);
  };
  return (
    <form className="copy-to-pool" aria-label={`Copy ${image.name}`} onSubmit={submit}>
      <select aria-label="Target pool" value={poolId} onChange={(e) => setChosen(e.target.value)}>
        {candidates.map(poolOption)}
      </select>
      <button type="submit" className="primary" disabled={busy || !poolId}>
        {busy ? 'Copying…' : 'Copy'}
      </button>
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ErrorAlert error={error} title="Copy not started" />
    </form>
  );
}

/**
 * Reads the image's file whole on its node and holds it to the recorded checksum (records one
 * when there is none). A file that is not the one recorded is said so, with the choice to record
 * its checksum instead.
 */
function VerifyButton({ image, onDone }: { image: ImageRow; onDone: () => void }) {
  const verify = (accept: boolean) =>
    client.request('verifyImage', { params: { id: image.id }, body: accept ? { accept } : {} });
  const { busy, error, run } = useAction({ after: onDone });
  const [answer, setAnswer] = useState<Awaited<ReturnType<typeof verify>> | null>(null);
  const go = async (accept: boolean) => {
    setAnswer(null);
    setAnswer((await run(() => verify(accept))) ?? null);
  };
  const read = answer ? `${answer.checksum.algorithm} ${answer.checksum.value}` : '';
  return (
    <div className="verify">
      <button
        type="button"
        disabled={busy}
        aria-label={`Verify ${image.name}`}
        title="Read the file and check it against the recorded checksum"
        onClick={() => go(false)}
      >
        {busy ? 'Verifying…' : 'Verify'}
      </button>
      {answer && answer.outcome !== 'mismatch' && (
        <p role="status" className="reason small">
          {answer.outcome === 'matches' ? `Matches: ${read}` : `Recorded ${read}`}
        </p>
      )}
      {answer?.outcome === 'mismatch' && (
        <div role="alert" className="reason bad small">
          The file's {read} is not the {answer.recorded?.value} recorded: it is not the file that was verified, and no
          VM is made from the image until it is verified again.
          <ConfirmButton
            label="Record the file's checksum"
            accessibleName={`Record the checksum of ${image.name}'s file`}
            confirmLabel="Confirm"
            busyLabel="Recording…"
            detail="The image is then taken as the file it is now, and is ready again."
            disabled={busy}
            busy={busy}
            onConfirm={() => go(true)}
          />
        </div>
      )}
      <ErrorAlert error={error} title="Not verified" />
    </div>
  );
}

function RescanButton({ onDone }: { onDone: () => void }) {
  const { busy, error, run } = useAction({ after: onDone });
  const [result, setResult] = useState<string | null>(null);
  const rescan = async () => {
    setResult(null);
    const answer = await run(() => client.request('rescanImages', { body: {} }));
    if (!answer) return;
    const failed = answer.failed.map((f) => `${f.poolId} on ${f.nodeId}: ${f.error}`);
    // A file put in a pool that does not show up: why it was left out.
    const leftOut = answer.scanned.flatMap((s) => s.invalid.map((f) => `${f.relPath} (${f.message})`));
    // A pool is scanned once for each content type it holds (ISOs, disk images).
    const pools = new Set(answer.scanned.map((s) => s.poolId));
    setResult(
      `Scanned ${pools.size} pool(s)` +
        (leftOut.length ? `; left out: ${leftOut.join('; ')}` : '') +
        (failed.length ? `; failed: ${failed.join('; ')}` : ''),
    );
  };
  return (
    <div className="rescan">
      <button type="button" disabled={busy} onClick={rescan}>
        {busy ? 'Scanning…' : 'Rescan pools'}
      </button>
      {result && <span role="status">{result}</span>}
      <ErrorAlert error={error} />
    </div>
  );
}

function poolsFor(pools: Pool[], content: 'iso' | 'images'): Pool[] {
  return pools.filter((p) => p.contentTypes.includes(content));
}

function poolOption(pool: Pool) {
  const active = pool.nodeStates.filter((s) => s.status === 'active').length;
  return (
    <option key={pool.id} value={pool.id}>
      {pool.name} ({active ? `active on ${active} node${active === 1 ? '' : 's'}` : 'not active on any node'})
    </option>
  );
}

function CatalogDownload({ pools, onStarted }: { pools: Pool[]; onStarted: () => void }) {
  const catalog = usePoll((signal) => client.request('listCatalog', { signal }), { intervalMs: 60_000, deps: [] });
  const [catalogId, setCatalogId] = useState('');
  const [poolId, setPoolId] = useState('');
  const { busy, error, fieldErrors, run } = useAction();
  const [started, setStarted] = useState<string | null>(null);
  const entry = catalog.data?.entries.find((e) => e.id === catalogId);
  const candidates = poolsFor(pools, entry?.kind === 'iso' ? 'iso' : 'images');

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const chosenPool = poolId || candidates[0]?.id || '';
    setStarted(null);
    const image = await run(() => client.request('downloadImage', { body: { catalogId, poolId: chosenPool } }));
    if (!image) return;
    setStarted(`Downloading ${image.name} into ${pools.find((p) => p.id === chosenPool)?.name ?? chosenPool}.`);
    onStarted();
  };

  return (
    <form className="panel" onSubmit={submit} aria-labelledby="catalog-heading">
      <h2 id="catalog-heading">Download from the catalog</h2>
      <ErrorAlert error={catalog.error} title="Could not load the catalog" />
      <Field label="Catalog image" error={fieldErrors.catalogId}>
        {(props) => (
          <select {...props} value={catalogId} onChange={(e) => setCatalogId(e.target.value)} required>
            <option value="">Choose…</option>
            {catalog.data?.entries.map((e) => (
              <option key={e.id} value={e.id}>
                {e.name} — {KIND_LABEL[e.kind]}
                {e.sizeBytes ? `, ${formatBytes(e.sizeBytes)}` : ''}
              </option>
            ))}
          </select>
        )}
      </Field>
      {entry && (
        <p className="muted small">
          {entry.description} {osLabel(entry.os)} · from <code>{entry.sourceUrl}</code>
        </p>
      )}
      <Field
        label="Into pool"
        error={fieldErrors.poolId}
        hint={
          entry && candidates.length === 0
            ? `No pool holds ${entry.kind === 'iso' ? 'ISOs' : 'cloud images'}.`
            : undefined
        }
      >
        {(props) => (
          <select {...props} value={poolId || candidates[0]?.id || ''} onChange={(e) => setPoolId(e.target.value)}>
            {candidates.map(poolOption)}
          </select>
        )}
      </Field>
      <ErrorAlert error={error} title="Download not started" />
      {started && (
        <p role="status" className="ok">
          {started}
        </p>
      )}
      <button type="submit" className="primary" disabled={busy || !catalogId || candidates.length === 0}>
        {busy ? 'Starting…' : 'Download'}
      </button>
    </form>
  );
}

function FileUpload({ pools, onUploaded }: { pools: Pool[]; onUploaded: () => void }) {
  const [poolId, setPoolId] = useState('');
  const [file, setFile] = useState<File | null>(null);
  // An ISO goes into a pool of ISOs, a disk image (qcow2, raw) into one of disk images.
  const kind = file ? uploadKindOf(file.name) : 'iso';
  const candidates = poolsFor(pools, kind === 'iso' ? 'iso' : 'images');
  const [progress, setProgress] = useState<{ loaded: number; total: number } | null>(null);
  const { error, fieldErrors, run } = useAction();
  const [done, setDone] = useState<string | null>(null);
  const upload = useRef<Upload<ImageRecord> | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const chosenPool = candidates.some((p) => p.id === poolId) ? poolId : candidates[0]?.id;
    if (!file || !chosenPool) return;
    setDone(null);
    setProgress({ loaded: 0, total: file.size });
    const image = await run(async () => {
      upload.current = uploadFile({
        poolId: chosenPool,
        name: file.name,
        file,
        onProgress: (loaded, total) => setProgress({ loaded, total: total || file.size }),
      });
      try {
        return await upload.current.done;
      } finally {
        upload.current = null;
        setProgress(null);
      }
    });
    if (!image) return;
    setDone(`Uploaded ${image.name}.`);
    setFile(null);
    if (fileInput.current) fileInput.current.value = '';
    onUploaded();
  };

  const percent = progress?.total ? (progress.loaded / progress.total) * 100 : null;
  return (
    <form className="panel" onSubmit={submit} aria-labelledby="upload-heading">
      <h2 id="upload-heading">Upload an ISO or disk image</h2>
      <Field
        label="File"
        error={fieldErrors.name ?? fieldErrors['']}
        hint="An ISO (.iso), or a qcow2 or raw disk image."
      >
        {(props) => (
          <input
            {...props}
            ref={fileInput}
            type="file"
            accept=".iso,.qcow2,.img,.raw,application/x-iso9660-image"
            onChange={(e) => setFile(e.target.files?.[0] ?? null)}
          />
        )}
      </Field>
      <Field
        label={kind === 'iso' ? 'Into ISO pool' : 'Into disk image pool'}
        error={fieldErrors.poolId}
        hint={candidates.length === 0 ? `No pool holds ${kind === 'iso' ? 'ISOs' : 'disk images'}.` : undefined}
      >
        {(props) => (
          <select
            {...props}
            value={candidates.some((p) => p.id === poolId) ? poolId : candidates[0]?.id || ''}
            onChange={(e) => setPoolId(e.target.value)}
          >
            {candidates.map(poolOption)}
          </select>
        )}
      </Field>
      {progress && (
        <Progress
          label={`Upload of ${file?.name ?? 'the file'}`}
          progress={{ bytesDone: progress.loaded, bytesTotal: progress.total, percent }}
        />
      )}
      <ErrorAlert error={error} title="Upload failed" />
      {done && (
        <p role="status" className="ok">
          {done}
        </p>
      )}
      <div className="buttons">
        <button type="submit" className="primary" disabled={!file || candidates.length === 0 || progress !== null}>
          {progress ? 'Uploading…' : 'Upload'}
        </button>
        {progress && (
          <button type="button" onClick={() => upload.current?.abort()}>
            Cancel upload
          </button>
        )}
      </div>
      {file && !progress && <p className="muted small">{formatBytes(file.size)}</p>}
    </form>
  );
}
