import { type FormEvent, type ReactNode, useEffect, useState } from 'react';
import { ApiError, client, query } from '../api.js';
import { AvailabilityBadge, Empty, ErrorAlert, Field, LoadNote, NodeOptions, Progress } from '../components.js';
import { formatBytes, KIND_LABEL, osLabel } from '../format.js';
import { navigate, type Polled, SAFETY_REFRESH_MS, useAction, useNodeList, usePoll } from '../hooks.js';
import { applyToAvailable } from '../live.js';
import type { Available, NodeDetail, VmDefaultsRow } from '../types.js';
import { defaultNics, NetworkStep, type NicChoice, nicsForRequest, useNodeNetworks } from './NetworkStep.js';

type StepId = 'basics' | 'boot' | 'resources' | 'network' | 'review';
const STEPS: { id: StepId; title: string }[] = [
  { id: 'basics', title: 'Basics' },
  { id: 'boot', title: 'Boot media' },
  { id: 'resources', title: 'Resources' },
  { id: 'network', title: 'Network' },
  { id: 'review', title: 'Review' },
];

/** Which step holds each field of POST /vms, so an error from the API is shown where the field is. */
const FIELD_STEP: Record<string, StepId> = {
  name: 'basics',
  nodeId: 'basics',
  imageId: 'boot',
  cpu: 'resources',
  memoryMiB: 'resources',
  diskGiB: 'resources',
  firmware: 'resources',
  diskPoolId: 'resources',
  user: 'resources',
  sshAuthorizedKeys: 'resources',
  networks: 'network',
};

interface Draft {
  name: string;
  nodeId: string;
  imageKey: string | null;
  cpu: string;
  memoryMiB: string;
  diskGiB: string;
  firmware: 'bios' | 'uefi';
  diskPoolId: string;
  user: string;
  sshKeys: string;
  /** null until the user changes the Network step: then the node's `default` network, if it has it. */
  nics: NicChoice[] | null;
}

type Errors = Record<string, string>;

/** Errors the VM service raises about one field without naming it in `details.issues`. */
function errorsOf(error: unknown): Errors {
  if (!(error instanceof ApiError)) return {};
  const fields = error.fieldErrors();
  if (Object.keys(fields).length > 0) return fields;
  if (error.code === 'ALREADY_EXISTS') return { name: error.message };
  if (error.code === 'NODE_NOT_CONNECTED' || (error.code === 'NOT_FOUND' && /node/i.test(error.message))) {
    return { nodeId: error.message };
  }
  if (error.details.imageId !== undefined) return { imageId: error.message };
  if (error.code === 'POOL_NOT_ACTIVE_ON_NODE') return { diskPoolId: error.message };
  if (error.code === 'NETWORK_NOT_FOUND' || error.code === 'NETWORK_NOT_ACTIVE') return { networks: error.message };
  return {};
}

const wholeNumber = (value: string) => /^\d+$/.test(value.trim());

export function VmWizard() {
  const [step, setStep] = useState<StepId>('basics');
  const [reached, setReached] = useState(0);
  const [draft, setDraft] = useState<Draft>({
    name: '',
    nodeId: '',
    imageKey: null,
    cpu: '1',
    memoryMiB: '1024',
    diskGiB: '10',
    firmware: 'bios',
    diskPoolId: '',
    user: '',
    sshKeys: '',
    nics: null,
  });
  const [errors, setErrors] = useState<Errors>({});
  const [submitError, setSubmitError] = useState<Error | null>(null);
  const [creating, setCreating] = useState(false);
  const update = (patch: Partial<Draft>, clears: string[] = Object.keys(patch)) => {
    setDraft((d) => ({ ...d, ...patch }));
    setErrors((e) => Object.fromEntries(Object.entries(e).filter(([k]) => !clears.includes(k))));
  };
  const stepIndex = STEPS.findIndex((s) => s.id === step);

  const nodes = useNodeList();
  const nodeList = nodes.data?.nodes ?? [];
  const nodeId = draft.nodeId || (nodeList.find((n) => n.connectionState === 'connected') ?? nodeList[0])?.id || '';
  const node = usePoll((signal) => client.request('getNode', { params: { id: nodeId }, signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [nodeId],
    enabled: Boolean(nodeId),
    live: { kinds: ['node', 'pool'] },
  });
  // Live: a download's progress moves its badge in place; a phase, pool or node change fetches the list again.
  const available = usePoll((signal) => client.request('listAvailableImages', { query: { nodeId }, signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [nodeId],
    enabled: Boolean(nodeId) && stepIndex >= 1,
    live: { kinds: ['image', 'pool', 'node'], apply: applyToAvailable },
  });
  const networks = useNodeNetworks(nodeId);
  const nics = draft.nics ?? defaultNics(networks.data?.networks);
  const chosen = available.data?.images.find((i) => i.key === draft.imageKey) ?? null;
  const imageId = chosen?.imageId ?? null;
  const image = usePoll((signal) => client.request('getImage', { params: { id: imageId ?? '' }, signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [imageId],
    enabled: Boolean(imageId),
    live: { kinds: ['image'], apply: (data, event) => (event.id === data.id ? 'reload' : null) },
  });

  // The OS's recommended sizes (osinfo-db) and the firmware the image needs become the resources
  // step's values until the user edits a size.
  const [sizesEdited, setSizesEdited] = useState(false);
  const defaults = usePoll(
    (signal): Promise<VmDefaultsRow> => client.request('imageVmDefaults', { params: { id: imageId ?? '' }, signal }),
    { intervalMs: 300_000, deps: [imageId], enabled: Boolean(imageId) },
  );
  const suggested = imageId ? defaults.data : undefined;
  useEffect(() => {
    if (!suggested || sizesEdited) return;
    setDraft((d) => ({
      ...d,
      cpu: String(suggested.cpu),
      memoryMiB: String(suggested.memoryMiB),
      diskGiB: String(suggested.diskGiB),
      firmware: suggested.firmware,
    }));
  }, [suggested, sizesEdited]);
  const editSize = (patch: Partial<Draft>) => {
    setSizesEdited(true);
    update(patch);
  };
  const osHint = (key: 'cpus' | 'memoryMiB' | 'diskGiB', unit: string) => {
    const os = suggested?.os;
    if (!os) return null;
    const recommended = os.recommended?.[key];
    const minimum = os.minimum?.[key];
    if (recommended == null && minimum == null) return null;
    const parts = [
      recommended != null ? `recommends ${recommended}${unit}` : null,
      minimum != null ? `needs at least ${minimum}${unit}` : null,
    ].filter(Boolean);
    return `${os.exact ? os.name : `${os.name} (as ${os.basedOn})`} ${parts.join(', ')} (osinfo-db).`;
  };
  const hintOf = (...parts: (string | null | undefined)[]) => parts.filter(Boolean).join(' ') || undefined;

  const check = (id: StepId): Errors => {
    const found: Errors = {};
    if (id === 'basics') {
      if (!draft.name.trim()) found.name = 'Enter a name for the VM.';
      if (!nodeId) found.nodeId = 'Choose the node to run the VM on.';
    }
    if (id === 'boot') {
      if (!chosen) found.imageId = 'Choose a ready image to boot from.';
      else if (!chosen.selectable) found.imageId = `${chosen.name} cannot be used now: ${chosen.reason}`;
    }
    if (id === 'resources') {
      for (const [field, label] of [
        ['cpu', 'CPUs'],
        ['memoryMiB', 'memory'],
        ['diskGiB', 'disk size'],
      ] as const) {
        if (!wholeNumber(draft[field])) found[field] = `Enter the ${label} as a whole number.`;
      }
      // Below what the image needs the API refuses (BELOW_IMAGE_REQUIREMENTS): said here first.
      const needs = image.data?.requirements;
      const atLeast = (field: 'cpu' | 'memoryMiB' | 'diskGiB', min: number, unit: string) => {
        if (!found[field] && Number(draft[field]) < min) found[field] = `The image needs at least ${min}${unit}.`;
      };
      if (needs) {
        atLeast('cpu', needs.minCpu, ' CPUs');
        atLeast('memoryMiB', needs.minMemoryMiB, ' MiB');
        atLeast('diskGiB', needs.minDiskGiB, ' GiB');
        if (needs.firmware !== 'any' && draft.firmware !== needs.firmware)
          found.firmware = `The image needs ${needs.firmware.toUpperCase()}.`;
      }
    }
    return found;
  };

  const goTo = (target: StepId) => {
    const index = STEPS.findIndex((s) => s.id === target);
    setStep(target);
    setReached((r) => Math.max(r, index));
  };

  const next = async (event: FormEvent) => {
    event.preventDefault();
    const found = check(step);
    // The name is checked with the server's rules (and against the VMs there) before moving on,
    // not first at the last step. If the check cannot be made, creating the VM checks it anyway.
    if (step === 'basics' && !found.name) {
      const answer = await client.request('checkVmName', { body: { name: draft.name } }).catch(() => null);
      if (answer && !answer.ok && answer.problem) found.name = answer.problem;
    }
    // Errors the API gave for fields of later steps stay until those fields are edited.
    setErrors((previous) => ({ ...previous, ...found }));
    if (Object.keys(found).length > 0) return;
    const following = STEPS[stepIndex + 1];
    if (following) goTo(following.id);
  };

  const create = async (event: FormEvent) => {
    event.preventDefault();
    if (!chosen?.imageId) return;
    setCreating(true);
    setSubmitError(null);
    const keys = draft.sshKeys
      .split('\n')
      .map((k) => k.trim())
      .filter(Boolean);
    try {
      const vm = await client.request('createVm', {
        body: {
          name: draft.name.trim(),
          nodeId,
          imageId: chosen.imageId,
          cpu: Number(draft.cpu),
          memoryMiB: Number(draft.memoryMiB),
          diskGiB: Number(draft.diskGiB),
          firmware: draft.firmware,
          ...(draft.diskPoolId ? { diskPoolId: draft.diskPoolId } : {}),
          ...(chosen.kind === 'cloud' && draft.user.trim() ? { user: draft.user.trim() } : {}),
          ...(chosen.kind === 'cloud' ? { sshAuthorizedKeys: keys } : {}),
          networks: nicsForRequest(nics),
        },
      });
      navigate(`/vms${query({ created: vm.name })}`);
    } catch (error) {
      const fields = errorsOf(error);
      setErrors(fields);
      setSubmitError(error as Error);
      // Back to the first step that has a field in error, where the message sits beside it.
      const first = STEPS.find((s) => Object.keys(fields).some((f) => FIELD_STEP[f] === s.id));
      if (first) setStep(first.id);
      setCreating(false);
    }
  };

  const cloud = chosen?.kind === 'cloud';
  const requirements = image.data?.requirements;
  const diskPools = (node.data?.pools ?? []).filter(
    ({ pool, state }) => pool.contentTypes.includes('images') && state?.status === 'active',
  );
  const refused =
    submitError && Object.keys(errors).some((f) => FIELD_STEP[f] === step) ? (
      <div className="alert alert-bad" role="alert">
        The control plane refused the VM: {submitError.message}
      </div>
    ) : null;
  // Not a field's fault (the node failed to build it, a timeout…): said on the review step.
  const failed = submitError && Object.keys(errorsOf(submitError)).length === 0 ? submitError : null;

  return (
    <section aria-labelledby="wizard-heading" className="wizard">
      <h1 id="wizard-heading">Create a VM</h1>
      <nav aria-label="Steps">
        <ol className="steps">
          {STEPS.map((s, i) => (
            <li key={s.id} className={s.id === step ? 'current' : i <= reached ? 'done' : ''}>
              <button
                type="button"
                aria-current={s.id === step ? 'step' : undefined}
                disabled={i > reached || creating}
                onClick={() => setStep(s.id)}
              >
                <span className="step-number">{i + 1}</span> {s.title}
              </button>
            </li>
          ))}
        </ol>
      </nav>

      {node.data && !node.data.connected && (
        <p className="alert alert-warn" role="status">
          Node {node.data.hostname} is not connected. Its images are shown as it last reported them, and the VM cannot
          be created there until its daemon reconnects.
        </p>
      )}

      {step === 'basics' && (
        <StepForm title="Basics" onSubmit={next} refused={refused}>
          <Field
            label="Name"
            error={errors.name}
            hint="Letters, digits, '.', '_' and '-'; also the libvirt domain name."
          >
            {(props) => (
              <input
                {...props}
                value={draft.name}
                autoComplete="off"
                onChange={(e) => update({ name: e.target.value })}
              />
            )}
          </Field>
          <Field label="Node" error={errors.nodeId}>
            {(props) => (
              <select
                {...props}
                value={nodeId}
                onChange={(e) =>
                  update({ nodeId: e.target.value, imageKey: null, diskPoolId: '' }, ['nodeId', 'imageId'])
                }
              >
                <NodeOptions nodes={nodeList} />
              </select>
            )}
          </Field>
          <ErrorAlert error={nodes.error} title="Could not load nodes" />
          <StepButtons back={null} next="Next: boot media" />
        </StepForm>
      )}

      {step === 'boot' && (
        <StepForm title="Boot media" onSubmit={next} refused={refused}>
          <BootMedia
            nodeId={nodeId}
            node={node.data}
            available={available}
            selectedKey={draft.imageKey}
            fieldError={errors.imageId}
            onSelect={(key) => update({ imageKey: key }, ['imageId'])}
            onChanged={available.reload}
          />
          <StepButtons back={() => setStep('basics')} next="Next: resources" />
        </StepForm>
      )}

      {step === 'resources' && (
        <StepForm title="Resources" onSubmit={next} refused={refused}>
          <div className="grid-3">
            <Field
              label="CPUs"
              error={errors.cpu}
              hint={hintOf(
                osHint('cpus', ''),
                requirements ? `The image asks for at least ${requirements.minCpu}.` : undefined,
              )}
            >
              {(props) => (
                <input
                  {...props}
                  inputMode="numeric"
                  value={draft.cpu}
                  onChange={(e) => editSize({ cpu: e.target.value })}
                />
              )}
            </Field>
            <Field
              label="Memory (MiB)"
              error={errors.memoryMiB}
              hint={hintOf(
                osHint('memoryMiB', ' MiB'),
                requirements?.minMemoryMiB
                  ? `The image asks for at least ${requirements.minMemoryMiB} MiB.`
                  : undefined,
              )}
            >
              {(props) => (
                <input
                  {...props}
                  inputMode="numeric"
                  value={draft.memoryMiB}
                  onChange={(e) => editSize({ memoryMiB: e.target.value })}
                />
              )}
            </Field>
            <Field
              label="Disk (GiB)"
              error={errors.diskGiB}
              hint={hintOf(
                osHint('diskGiB', ' GiB'),
                requirements?.minDiskGiB ? `The image asks for at least ${requirements.minDiskGiB} GiB.` : undefined,
              )}
            >
              {(props) => (
                <input
                  {...props}
                  inputMode="numeric"
                  value={draft.diskGiB}
                  onChange={(e) => editSize({ diskGiB: e.target.value })}
                />
              )}
            </Field>
          </div>
          <div className="grid-2">
            <Field
              label="Firmware"
              error={errors.firmware}
              hint={
                requirements && requirements.firmware !== 'any'
                  ? `The image needs ${requirements.firmware.toUpperCase()}.`
                  : undefined
              }
            >
              {(props) => (
                <select
                  {...props}
                  value={draft.firmware}
                  onChange={(e) => update({ firmware: e.target.value as Draft['firmware'] })}
                >
                  <option value="bios">BIOS</option>
                  <option value="uefi">UEFI</option>
                </select>
              )}
            </Field>
            <Field label="Disk pool" error={errors.diskPoolId}>
              {(props) => (
                <select {...props} value={draft.diskPoolId} onChange={(e) => update({ diskPoolId: e.target.value })}>
                  <option value="">Automatic (the image's pool if it holds disks)</option>
                  {diskPools.map(({ pool }) => (
                    <option key={pool.id} value={pool.id}>
                      {pool.name}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
          {cloud && (
            <div className="grid-2">
              <Field label="Login user" error={errors.user} hint="cloud-init creates it; empty: the image's default.">
                {(props) => (
                  <input
                    {...props}
                    value={draft.user}
                    placeholder={image.data?.os.defaultUser ?? ''}
                    onChange={(e) => update({ user: e.target.value })}
                  />
                )}
              </Field>
              <Field label="SSH public keys" error={errors.sshAuthorizedKeys} hint="One key per line.">
                {(props) => (
                  <textarea
                    {...props}
                    rows={3}
                    value={draft.sshKeys}
                    placeholder="ssh-ed25519 AAAA… you@host"
                    onChange={(e) => update({ sshKeys: e.target.value }, ['sshAuthorizedKeys'])}
                  />
                )}
              </Field>
            </div>
          )}
          <StepButtons back={() => setStep('boot')} next="Next: network" />
        </StepForm>
      )}

      {step === 'network' && (
        <StepForm title="Network" onSubmit={next} refused={refused}>
          <NetworkStep
            networks={networks}
            nics={nics}
            onChange={(changed) => update({ nics: changed }, ['networks'])}
            error={errors.networks}
          />
          <StepButtons back={() => setStep('resources')} next="Next: review" />
        </StepForm>
      )}

      {step === 'review' && (
        <StepForm title="Review" onSubmit={create} refused={null}>
          <dl className="facts review">
            <dt>Name</dt>
            <dd>{draft.name}</dd>
            <dt>Node</dt>
            <dd>{node.data?.hostname ?? nodeId}</dd>
            <dt>Boot image</dt>
            <dd>
              {chosen ? (
                <>
                  {chosen.name} ({KIND_LABEL[chosen.kind]}) <AvailabilityBadge status={chosen.status} />
                  {chosen.path && (
                    <div>
                      <code className="path">{chosen.path}</code>
                    </div>
                  )}
                  {!chosen.selectable && <p className="reason bad">{chosen.reason}</p>}
                </>
              ) : (
                '—'
              )}
            </dd>
            <dt>CPUs</dt>
            <dd>{draft.cpu}</dd>
            <dt>Memory</dt>
            <dd>{draft.memoryMiB} MiB</dd>
            <dt>Disk</dt>
            <dd>
              {draft.diskGiB} GiB in{' '}
              {diskPools.find((p) => p.pool.id === draft.diskPoolId)?.pool.name ?? 'the automatic pool'}
            </dd>
            <dt>Firmware</dt>
            <dd>{draft.firmware.toUpperCase()}</dd>
            <dt>Network</dt>
            <dd>{nics.length > 0 ? nics.join(', ') : 'none'}</dd>
            {cloud && (
              <>
                <dt>Login user</dt>
                <dd>{draft.user || image.data?.os.defaultUser || 'the image default'}</dd>
                <dt>SSH keys</dt>
                <dd>{draft.sshKeys.split('\n').filter((k) => k.trim()).length}</dd>
              </>
            )}
          </dl>
          {failed && (
            <div className="alert alert-bad" role="alert">
              The VM was not created: {failed.message}
              {failed instanceof ApiError && failed.code !== 'UNREACHABLE' && (
                <span className="code"> ({failed.code})</span>
              )}
            </div>
          )}
          {creating && (
            <p role="status" className="muted">
              Creating the VM: the node prepares its disk and starts it; this can take a minute.
            </p>
          )}
          <div className="buttons">
            <button type="button" onClick={() => setStep('network')} disabled={creating}>
              Back
            </button>
            <button type="submit" className="primary" disabled={creating || !chosen?.selectable}>
              {creating ? 'Creating…' : 'Create VM'}
            </button>
          </div>
        </StepForm>
      )}
    </section>
  );
}

function StepForm({
  title,
  onSubmit,
  refused,
  children,
}: {
  title: string;
  onSubmit: (event: FormEvent) => void;
  refused: ReactNode;
  children: ReactNode;
}) {
  return (
    <form className="panel step" onSubmit={onSubmit} aria-label={title} noValidate>
      <h2>{title}</h2>
      {refused}
      {children}
    </form>
  );
}

function StepButtons({ back, next }: { back: (() => void) | null; next: string }) {
  return (
    <div className="buttons">
      {back && (
        <button type="button" onClick={back}>
          Back
        </button>
      )}
      <button type="submit" className="primary">
        {next}
      </button>
    </div>
  );
}

type Filter = 'all' | 'cloud' | 'iso';

function BootMedia({
  nodeId,
  node,
  available,
  selectedKey,
  fieldError,
  onSelect,
  onChanged,
}: {
  nodeId: string;
  node: NodeDetail | undefined;
  available: Polled<{ images: Available[] }>;
  selectedKey: string | null;
  fieldError: string | undefined;
  onSelect: (key: string) => void;
  onChanged: () => void;
}) {
  const items = available.data?.images;
  const [filter, setFilter] = useState<Filter>('all');
  const [text, setText] = useState('');
  const needle = text.trim().toLowerCase();
  const shown = (items ?? []).filter(
    (i) =>
      (filter === 'all' || i.kind === filter) &&
      (!needle || `${i.name} ${osLabel(i.os)}`.toLowerCase().includes(needle)),
  );
  const selected = items?.find((i) => i.key === selectedKey);
  return (
    <>
      <p className="lede">
        Cloud images and ISOs as node <strong>{node?.hostname ?? nodeId}</strong> sees them. Only a ready image can be
        chosen; the others say why not.
      </p>
      <fieldset className="segmented">
        <legend className="visually-hidden">Show</legend>
        {(
          [
            ['all', 'All'],
            ['cloud', 'Cloud images'],
            ['iso', 'ISOs'],
          ] as const
        ).map(([value, label]) => (
          <button key={value} type="button" aria-pressed={filter === value} onClick={() => setFilter(value)}>
            {label}
          </button>
        ))}
      </fieldset>
      <input
        type="search"
        className="choice-search"
        aria-label="Find an image"
        placeholder="Find by name or OS"
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      <LoadNote polled={available} what="images" />
      {selected && !selected.selectable && (
        <p className="alert alert-warn" role="alert">
          {selected.name} was chosen but cannot be used now: {selected.reason}
        </p>
      )}
      <fieldset className="choices" aria-describedby={fieldError ? 'boot-image-error' : undefined}>
        <legend>Boot image</legend>
        {fieldError && (
          <p className="field-error" id="boot-image-error">
            {fieldError}
          </p>
        )}
        {items && shown.length === 0 && (
          <Empty>
            {items.length === 0 ? 'No images here. Add a pool to this node, or upload an ISO.' : 'No image matches.'}
          </Empty>
        )}
        {groupChoices(shown).map((group) => (
          <fieldset key={group.label} className="choice-group">
            <legend className="choice-group-title">{group.label}</legend>
            <ul>
              {group.items.map((item) => (
                <Choice
                  key={item.key}
                  item={item}
                  nodeId={nodeId}
                  node={node}
                  selected={item.key === selectedKey}
                  onSelect={() => onSelect(item.key)}
                  onChanged={onChanged}
                />
              ))}
            </ul>
          </fieldset>
        ))}
      </fieldset>
    </>
  );
}

/** Ready first, then what is on its way, then what cannot be chosen now. */
const AVAILABILITY_ORDER: Record<Available['status'], number> = {
  ready: 0,
  downloading: 1,
  error: 2,
  'not-downloaded': 3,
  unavailable: 4,
};

/** The OS a choice is grouped under: its distribution, or its family when that is all that is known. */
function osGroupOf(item: Available): string {
  const os = item.os;
  const name = os?.distribution || (os && os.family !== 'unknown' ? os.family : '');
  return name ? name[0]?.toUpperCase() + name.slice(1) : 'Unknown OS';
}

/**
 * Boot media grouped by kind and OS, the groups with a ready image first; inside a group ready
 * images first, then by name. Groups keep the order of their best choice.
 */
function groupChoices(items: Available[]): { label: string; items: Available[] }[] {
  const sorted = [...items].sort(
    (a, b) => AVAILABILITY_ORDER[a.status] - AVAILABILITY_ORDER[b.status] || a.name.localeCompare(b.name),
  );
  const groups = new Map<string, Available[]>();
  for (const item of sorted) {
    const label = `${KIND_LABEL[item.kind]} · ${osGroupOf(item)}`;
    groups.set(label, [...(groups.get(label) ?? []), item]);
  }
  return [...groups].map(([label, grouped]) => ({ label, items: grouped }));
}

function Choice({
  item,
  nodeId,
  node,
  selected,
  onSelect,
  onChanged,
}: {
  item: Available;
  nodeId: string;
  node: NodeDetail | undefined;
  selected: boolean;
  onSelect: () => void;
  onChanged: () => void;
}) {
  const { busy, error, run: act } = useAction({ after: onChanged });
  const [poolChoice, setPoolChoice] = useState('');
  const id = `boot-${item.key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const content = item.kind === 'iso' ? 'iso' : 'images';
  const pools = (node?.pools ?? []).filter(
    ({ pool, state }) => pool.contentTypes.includes(content) && state?.status === 'active',
  );
  const poolId = poolChoice || pools[0]?.pool.id || '';

  return (
    <li className={`choice${selected ? ' selected' : ''}${item.selectable ? '' : ' not-selectable'}`}>
      <input
        type="radio"
        id={id}
        name="boot-image"
        value={item.key}
        checked={selected}
        disabled={!item.selectable}
        aria-describedby={`${id}-detail`}
        onChange={onSelect}
      />
      <div className="choice-body">
        <div className="choice-head">
          <label htmlFor={id} className="choice-title">
            {item.name}
          </label>
          <span className="muted small">
            {KIND_LABEL[item.kind]} · {osLabel(item.os)}
            {item.sizeBytes ? ` · ${formatBytes(item.sizeBytes)}` : ''}
          </span>
        </div>
        <div id={`${id}-detail`} className="choice-detail">
          <AvailabilityBadge status={item.status} />{' '}
          {item.status === 'ready' && item.path && (
            <span>
              at <code className="path">{item.path}</code>
            </span>
          )}
          {item.status === 'downloading' && <Progress progress={item.progress} label={`Download of ${item.name}`} />}
          {/* A ready file may be no boot image (a data disc): the reason says so, after its path. */}
          {!item.selectable && item.status !== 'downloading' && item.reason && (
            <>
              {item.status === 'ready' && ' '}
              <span className={`reason${item.status === 'error' ? ' bad' : ''}`}>Cannot be chosen: {item.reason}</span>
            </>
          )}
        </div>
        {item.status === 'not-downloaded' && item.catalogId && (
          <div className="choice-actions">
            {pools.length > 1 && (
              <label>
                Pool{' '}
                <select value={poolId} onChange={(e) => setPoolChoice(e.target.value)}>
                  {pools.map(({ pool }) => (
                    <option key={pool.id} value={pool.id}>
                      {pool.name}
                    </option>
                  ))}
                </select>
              </label>
            )}
            <button
              type="button"
              disabled={busy || !poolId}
              aria-label={`Download ${item.name}`}
              onClick={() =>
                act(() =>
                  client.request('downloadImage', { body: { catalogId: item.catalogId ?? '', poolId, nodeId } }),
                )
              }
            >
              {busy ? 'Starting…' : 'Download'}
            </button>
            {pools.length === 0 && (
              <span className="muted small">
                No active pool on this node holds {item.kind === 'iso' ? 'ISOs' : 'cloud images'}.
              </span>
            )}
            {pools.length === 1 && <span className="muted small">into {pools[0]?.pool.name}</span>}
          </div>
        )}
        {item.status === 'error' && item.imageId && item.catalogId && (
          <div className="choice-actions">
            <button
              type="button"
              disabled={busy}
              aria-label={`Retry download of ${item.name}`}
              onClick={() => act(() => client.request('retryImageDownload', { params: { id: item.imageId ?? '' } }))}
            >
              {busy ? 'Retrying…' : 'Retry download'}
            </button>
          </div>
        )}
        <ErrorAlert error={error} />
      </div>
    </li>
  );
}
