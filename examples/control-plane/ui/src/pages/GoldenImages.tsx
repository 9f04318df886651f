import type { ResponseBody } from '@quantix/client';
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { createPortal } from 'react-dom';
import { client } from '../api.js';
import { Ago, Badge, ErrorAlert, Field } from '../components.js';
import { formatDate } from '../format.js';
import { SAFETY_REFRESH_MS, useAction, usePoll } from '../hooks.js';
import type { ImageRow } from '../types.js';

export type Follow = ResponseBody<'getImageFollow'>;
type Check = ResponseBody<'checkImageUpstream'>;

/** Set by the control plane on every revision after the first; the first revision is the golden image itself. */
const GOLDEN_LABEL = 'quantix.io/golden-image';

/** The golden image a row belongs to: the one it is a revision of, else itself. */
export function goldenIdOf(image: ImageRow): string {
  return image.labels[GOLDEN_LABEL] ?? image.id;
}

/** Only a ready catalog image (or a revision of one) can follow upstream. */
export function canFollow(image: ImageRow): boolean {
  return image.phase === 'ready' && Boolean(image.catalogId || image.labels[GOLDEN_LABEL]);
}

/**
 * The follow setting of each golden image the rows belong to, by golden id (null: not followed):
 * one read of every follow, however many catalog images the page shows.
 */
export function useFollows(images: ImageRow[] | undefined) {
  const ids = [...new Set((images ?? []).filter(canFollow).map(goldenIdOf))].sort();
  return usePoll(
    async (signal) => {
      const { goldenImages } = await client.request('listGoldenImages', { signal });
      const followed = new Map(goldenImages.map((follow) => [follow.id, follow]));
      return new Map<string, Follow | null>(ids.map((id) => [id, followed.get(id) ?? null]));
    },
    {
      intervalMs: SAFETY_REFRESH_MS,
      deps: ids,
      enabled: ids.length > 0,
      // A new revision or a phase change may change a follow (last check, kept revisions); progress does not.
      live: { kinds: ['image'], apply: (_data, event) => (event.type === 'image.progress' ? null : 'reload') },
    },
  );
}

export function FollowBadge() {
  return (
    <span className="follow-badge">
      <Badge tone="ok">Follows upstream</Badge>
    </span>
  );
}

/** The row's button: "Follow upstream…" for a ready catalog image, "Upstream…" for one that follows; opens the dialog. */
export function UpstreamButton({
  image,
  follow,
  onChange,
}: {
  image: ImageRow;
  follow: Follow | null;
  onChange: () => void;
}) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <div>
        <button
          type="button"
          className="upstream-button"
          aria-label={`Upstream of ${image.name}`}
          onClick={() => setOpen(true)}
        >
          {follow ? 'Upstream…' : 'Follow upstream…'}
        </button>
      </div>
      {/* Out of the table, so the dialog does not take on a cell's styles. */}
      {open &&
        createPortal(
          <FollowDialog image={image} follow={follow} onChange={onChange} onClose={() => setOpen(false)} />,
          document.body,
        )}
    </>
  );
}

const CHECK_OUTCOME: Record<Check['outcome'], string> = {
  unchanged: 'Unchanged',
  'new-revision': 'New revision',
  'not-listed': 'Not listed',
  failed: 'Failed',
};

function CheckText({ check }: { check: Check }) {
  return (
    <>
      <strong>{CHECK_OUTCOME[check.outcome]}</strong> — {check.message}
      {check.code && <span className="code"> ({check.code})</span>}
    </>
  );
}

function FollowDialog({
  image,
  follow,
  onChange,
  onClose,
}: {
  image: ImageRow;
  follow: Follow | null;
  onChange: () => void;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const goldenId = goldenIdOf(image);
  const [schedule, setSchedule] = useState(follow?.schedule ?? '0 3 * * *');
  const [keep, setKeep] = useState(String(follow?.keep ?? 3));
  const [checked, setChecked] = useState<Check | null>(null);
  const { busy, error, fieldErrors, run } = useAction({ after: onChange });
  const revisions = usePoll((signal) => client.request('listImageRevisions', { params: { id: goldenId }, signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [goldenId, follow?.latestRevision],
    enabled: follow !== null,
  });

  useEffect(() => {
    dialog.current?.showModal();
  }, []);

  const save = async (event: FormEvent) => {
    event.preventDefault();
    await run(() =>
      client.request('followImage', {
        params: { id: goldenId },
        body: { schedule: schedule.trim(), keep: Number(keep) },
      }),
    );
  };
  const checkNow = async () => {
    setChecked(null);
    const answer = await run(() => client.request('checkImageUpstream', { params: { id: goldenId } }));
    if (answer) setChecked(answer);
  };
  const unfollow = () => run(() => client.request('unfollowImage', { params: { id: goldenId } }));
  const headingId = `follow-${goldenId}`;

  return (
    <dialog ref={dialog} className="dialog" aria-labelledby={headingId} onClose={onClose}>
      <h2 id={headingId}>Upstream of {image.name}</h2>
      {follow ? (
        <>
          <dl className="facts">
            <dt>Follows</dt>
            <dd>
              catalog entry {follow.catalogId}, <code>{follow.schedule}</code> (UTC), keeps {follow.keep}
            </dd>
            <dt>Next check</dt>
            <dd>{formatDate(follow.nextRunAt)}</dd>
            <dt>Last check</dt>
            <dd>
              {follow.lastCheck ? <CheckText check={follow.lastCheck} /> : 'not checked yet'}{' '}
              {follow.lastCheckAt && (
                <span className="muted">
                  (<Ago iso={follow.lastCheckAt} />)
                </span>
              )}
            </dd>
            <dt>Kept in use</dt>
            <dd>
              {follow.keptInUse.length === 0
                ? `none: every revision beyond the last ${follow.keep} is removed`
                : follow.keptInUse
                    .map((kept) => `r${kept.revision} (used by ${kept.vms.map((vm) => vm.name).join(', ')})`)
                    .join('; ')}
            </dd>
          </dl>
          <h3>Revisions</h3>
          <ErrorAlert error={revisions.error} title="Could not load the revisions" />
          <ol className="revisions" aria-label={`Revisions of ${image.name}`}>
            {revisions.data?.revisions.map((r) => (
              <li key={r.revision}>
                r{r.revision} — {r.image.name}, {r.image.phase}{' '}
                <span className="muted">({formatDate(r.createdAt)})</span>
              </li>
            ))}
          </ol>
          {checked && (
            <p role="status">
              Check: <CheckText check={checked} />
            </p>
          )}
          <div className="buttons">
            <button type="button" disabled={busy} onClick={checkNow}>
              {busy ? 'Working…' : 'Check now'}
            </button>
            <button type="button" disabled={busy} onClick={unfollow}>
              Unfollow
            </button>
          </div>
        </>
      ) : (
        <p className="muted">
          Not followed. Following checks the catalog entry’s checksum file on a schedule and downloads each new build as
          the next revision.
        </p>
      )}
      <form onSubmit={save} aria-label={follow ? 'Follow settings' : 'Follow upstream'}>
        <Field
          label="Check schedule (cron, UTC)"
          error={fieldErrors.schedule}
          hint="minute hour day month weekday: 0 3 * * * is daily at 03:00, 0 */6 * * * every 6 hours; @daily works too."
        >
          {(props) => <input {...props} required value={schedule} onChange={(e) => setSchedule(e.target.value)} />}
        </Field>
        <Field label="Revisions to keep" error={fieldErrors.keep} hint="Older ones are removed unless a VM uses them.">
          {(props) => (
            <input
              {...props}
              type="number"
              min={1}
              max={100}
              required
              value={keep}
              onChange={(e) => setKeep(e.target.value)}
            />
          )}
        </Field>
        <ErrorAlert error={error} title="Refused" />
        <div className="buttons">
          <button type="submit" className="primary" disabled={busy}>
            {follow ? 'Save' : 'Follow'}
          </button>
          <button type="button" onClick={() => dialog.current?.close()}>
            Close
          </button>
        </div>
      </form>
    </dialog>
  );
}
