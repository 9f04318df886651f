import { type AnchorHTMLAttributes, type ReactNode, useId, useState } from 'react';
import { ApiError } from './api.js';
import { formatAgo, formatBytes, formatDate } from './format.js';
import { navigate, type Polled, useNow } from './hooks.js';
import type { Availability, ImagePhase, ImageRow, QNode } from './types.js';

export type Tone = 'ok' | 'busy' | 'bad' | 'idle' | 'warn';

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

const AVAILABILITY: Record<Availability, { label: string; tone: Tone }> = {
  ready: { label: 'Ready', tone: 'ok' },
  downloading: { label: 'Downloading', tone: 'busy' },
  error: { label: 'Error', tone: 'bad' },
  'not-downloaded': { label: 'Not downloaded', tone: 'idle' },
  unavailable: { label: 'Unavailable', tone: 'warn' },
};

export function AvailabilityBadge({ status }: { status: Availability }) {
  const { label, tone } = AVAILABILITY[status];
  return <Badge tone={tone}>{label}</Badge>;
}

const PHASE_TONE: Record<ImagePhase, Tone> = {
  pending: 'busy',
  downloading: 'busy',
  verifying: 'busy',
  ready: 'ok',
  error: 'bad',
  deleting: 'warn',
  missing: 'warn',
};

export function PhaseBadge({ phase }: { phase: ImagePhase }) {
  return <Badge tone={PHASE_TONE[phase]}>{phase[0]?.toUpperCase() + phase.slice(1)}</Badge>;
}

/** Download progress, with an import's stage; without a known total it shows the bytes so far and no bar length. */
export function Progress({ progress, label }: { progress: ImageRow['progress']; label: string }) {
  const percent = progress?.percent ?? null;
  const amount = !progress
    ? 'starting…'
    : percent !== null
      ? `${Math.floor(percent)}% · ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)}`
      : `${formatBytes(progress.bytesDone)} so far`;
  // An import goes through stages after the download (decompressing, converting…): name the one it is in.
  const stage = progress?.stage;
  const text = stage ? `${stage[0]?.toUpperCase()}${stage.slice(1)} · ${amount}` : amount;
  return (
    <div className="progress">
      <div
        className="progress-track"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuetext={text}
        {...(percent !== null ? { 'aria-valuenow': Math.floor(percent) } : {})}
      >
        <div
          className={`progress-fill${percent === null ? ' indeterminate' : ''}`}
          style={{ width: `${percent ?? 30}%` }}
        />
      </div>
      <span className="progress-text">{text}</span>
    </div>
  );
}

export function ErrorAlert({ error, title }: { error: Error | undefined | null; title?: string }) {
  if (!error) return null;
  const code = error instanceof ApiError ? error.code : null;
  return (
    <div className="alert alert-bad" role="alert">
      {title && <strong>{title}: </strong>}
      {error.message}
      {code && code !== 'UNREACHABLE' && <span className="code"> ({code})</span>}
    </div>
  );
}

/** A poll that failed after data was shown: the old data stays, with a note that it is old. */
export function StaleNote({ error, updatedAt }: { error: Error | undefined; updatedAt: number | undefined }) {
  const now = useNow();
  if (!error) return null;
  return (
    <div className="alert alert-warn" role="alert">
      Could not refresh: {error.message}
      {updatedAt ? ` — showing data from ${formatAgo(new Date(updatedAt).toISOString(), now)}.` : ''}
    </div>
  );
}

export interface FieldControlProps {
  id: string;
  'aria-invalid': boolean;
  'aria-describedby'?: string;
}

/**
 * A labelled control with its hint and error under it; the error is the control's accessible
 * description, so it is read out (and found by tests) as belonging to that field.
 */
export function Field({
  label,
  error,
  hint,
  children,
}: {
  label: string;
  error?: string | undefined;
  hint?: ReactNode;
  children: (props: FieldControlProps) => ReactNode;
}) {
  const id = useId();
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const describedBy = [error ? errorId : null, hint ? hintId : null].filter(Boolean).join(' ');
  return (
    <div className={`field${error ? ' field-invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, 'aria-invalid': Boolean(error), ...(describedBy ? { 'aria-describedby': describedBy } : {}) })}
      {error && (
        <p className="field-error" id={errorId}>
          {error}
        </p>
      )}
      {hint && (
        <p className="field-hint" id={hintId}>
          {hint}
        </p>
      )}
    </div>
  );
}

/** An edit form's name ("Pool name", "Image name") and description, side by side, with the API's messages for them. */
export function NameAndDescription({
  what,
  value,
  onChange,
  errors,
}: {
  what: string;
  value: { name: string; description: string };
  onChange: (patch: { name?: string; description?: string }) => void;
  errors: Record<string, string>;
}) {
  return (
    <div className="grid-2">
      <Field label={`${what} name`} error={errors.name}>
        {(props) => <input {...props} value={value.name} onChange={(e) => onChange({ name: e.target.value })} />}
      </Field>
      <Field label="Description" error={errors.description}>
        {(props) => (
          <input {...props} value={value.description} onChange={(e) => onChange({ description: e.target.value })} />
        )}
      </Field>
    </div>
  );
}

/**
 * A group of checkboxes under a legend, with the group's error under it as the group's accessible
 * description, as Field does for one control.
 */
export function CheckGroup({
  legend,
  error,
  children,
}: {
  legend: string;
  error?: string | undefined;
  children: ReactNode;
}) {
  const errorId = `${useId()}-error`;
  return (
    <fieldset className="checks" aria-describedby={error ? errorId : undefined}>
      <legend>{legend}</legend>
      {children}
      {error && (
        <p className="field-error" id={errorId}>
          {error}
        </p>
      )}
    </fieldset>
  );
}

export function Ago({ iso }: { iso: string | null | undefined }) {
  const now = useNow();
  return (
    <time dateTime={iso ?? undefined} title={formatDate(iso)}>
      {formatAgo(iso, now)}
    </time>
  );
}

export function Capacity({ capacity, available }: { capacity: number | null; available: number | null }) {
  if (capacity === null) return <span className="muted">unknown</span>;
  const used = available === null ? null : capacity - available;
  const percent = used === null || capacity === 0 ? null : Math.round((used / capacity) * 100);
  return (
    <div className="capacity">
      {percent !== null && (
        <meter min={0} max={100} value={percent} high={85} optimum={0} aria-label="Used space">
          {percent}%
        </meter>
      )}
      <span>
        {available !== null ? `${formatBytes(available)} free of ${formatBytes(capacity)}` : formatBytes(capacity)}
      </span>
    </div>
  );
}

export function Link({ to, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  return (
    <a
      {...rest}
      href={to}
      onClick={(event) => {
        rest.onClick?.(event);
        if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        navigate(to);
      }}
    />
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** Beside data that polls: why it failed to load, or that what is shown is old. */
export function LoadNote({ polled, what }: { polled: Polled<unknown>; what: string }) {
  return polled.data !== undefined ? (
    <StaleNote error={polled.error} updatedAt={polled.updatedAt} />
  ) : (
    <ErrorAlert error={polled.error} title={`Could not load ${what}`} />
  );
}

/** The options of a node picker, disconnected nodes marked. */
export function NodeOptions({ nodes }: { nodes: QNode[] }) {
  return (
    <>
      {nodes.length === 0 && <option value="">(no nodes registered)</option>}
      {nodes.map((n) => (
        <option key={n.id} value={n.id}>
          {n.hostname}
          {n.connectionState === 'connected' ? '' : ' (disconnected)'}
        </option>
      ))}
    </>
  );
}

/** A long path cut in its middle to `max` characters: where it starts and its file name stay. */
export function middleEllipsis(text: string, max = 40): string {
  if (text.length <= max) return text;
  const tail = Math.ceil((max - 1) * 0.6);
  return `${text.slice(0, max - 1 - tail)}…${text.slice(-tail)}`;
}

/**
 * A path in a table cell: shortened in the middle so it never squeezes its neighbours, the whole
 * of it on hover and for screen readers, and a button that copies it.
 */
export function PathText({ path, label }: { path: string; label: string }) {
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);
  const short = middleEllipsis(path);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(path);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
    setTimeout(() => setCopied(null), 2000);
  };
  return (
    <span className="path-cell">
      <code className="path-short" title={path}>
        {short === path ? (
          path
        ) : (
          <>
            <span aria-hidden="true">{short}</span>
            <span className="visually-hidden">{path}</span>
          </>
        )}
      </code>
      <button
        type="button"
        className="copy-button"
        aria-label={`Copy path of ${label}`}
        title={`Copy ${path}`}
        onClick={copy}
      >
        {copied === 'yes' ? 'Copied' : copied === 'failed' ? 'Not copied' : 'Copy'}
      </button>
    </span>
  );
}

/** A table's column headings; an empty name is a column of buttons, named for screen readers only. */
export function TableHead({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((column) => (
          <th scope="col" key={column || 'actions'}>
            {column || <span className="visually-hidden">Actions</span>}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** Delete in two clicks: the first asks, the second deletes. */
export function DeleteButton({
  name,
  disabled,
  busy,
  onDelete,
  detail,
}: {
  name: string;
  disabled: boolean;
  busy: boolean;
  onDelete: () => Promise<unknown>;
  /** What deleting takes with it, said beside the confirmation. */
  detail?: string;
}) {
  return (
    <ConfirmButton
      label="Delete"
      accessibleName={`Delete ${name}`}
      confirmLabel="Confirm delete"
      busyLabel="Deleting…"
      disabled={disabled}
      busy={busy}
      onConfirm={onDelete}
      {...(detail !== undefined ? { detail } : {})}
    />
  );
}

/** An action that cannot be undone, in two clicks: the first says what it does, the second does it. */
export function ConfirmButton({
  label,
  accessibleName,
  confirmLabel,
  busyLabel,
  disabled,
  busy,
  onConfirm,
  detail,
}: {
  label: string;
  /** The first button's name for assistive technology (and tests): which row or card it acts on. */
  accessibleName: string;
  confirmLabel: string;
  busyLabel: string;
  disabled: boolean;
  busy: boolean;
  onConfirm: () => Promise<unknown>;
  /** What the action does, said beside the confirmation. */
  detail?: string;
}) {
  const [confirming, setConfirming] = useState(false);
  if (!confirming) {
    return (
      <button type="button" disabled={disabled} aria-label={accessibleName} onClick={() => setConfirming(true)}>
        {label}
      </button>
    );
  }
  return (
    <>
      {detail && <span className="small">{detail}</span>}
      <button
        type="button"
        className="danger"
        disabled={busy}
        onClick={async () => {
          await onConfirm();
          setConfirming(false);
        }}
      >
        {busy ? busyLabel : confirmLabel}
      </button>
      <button type="button" onClick={() => setConfirming(false)}>
        Cancel
      </button>
    </>
  );
}
