import {
  type CatalogEntry,
  type Checksum,
  ErrorCode,
  fromJson,
  GOLDEN_LABELS,
  type Image,
  type ImageFetcher,
  isQuantixError,
  QuantixError,
  type Repositories,
  vmsUsingImage,
} from '@quantix/core';
import { CronExpressionParser } from 'cron-parser';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { type JobQueue, jobIdOf } from '../jobs/job-queue.js';
import { rowsOf } from '../rows.js';
import type { DownloadService } from './downloads.js';
import type { ImageService } from './image-service.js';

/**
 * What reads a catalog entry's sums file here: the fetcher for its URL scheme that can;
 * UNSUPPORTED_OPERATION when none can.
 */
export function checksumReaderFor(
  fetchers: readonly ImageFetcher[],
  entry: Pick<CatalogEntry, 'id' | 'sourceUrl'>,
): NonNullable<ImageFetcher['readChecksum']> {
  const scheme = new URL(entry.sourceUrl).protocol.replace(/:$/, '');
  const fetcher = fetchers.find((f) => f.schemes.includes(scheme) && f.readChecksum);
  if (!fetcher?.readChecksum) {
    throw new QuantixError(
      ErrorCode.UNSUPPORTED_OPERATION,
      `No fetcher here reads checksum files of ${scheme} sources, so ${entry.id} cannot follow upstream`,
      { details: { scheme, catalogId: entry.id } },
    );
  }
  return fetcher.readChecksum.bind(fetcher);
}

/** What a check of upstream found. */
export type GoldenCheckOutcome = 'unchanged' | 'new-revision' | 'not-listed' | 'failed';

export interface GoldenCheck {
  outcome: GoldenCheckOutcome;
  /** What happened, for a person. */
  message: string;
  /** The checksum the sums file lists now (`sha256:<hex>`), when it could be read. */
  checksum: string | null;
  /** The revision this check started (new-revision). */
  revision: number | null;
  imageId: string | null;
  /** A failure's code (failed, not-listed). */
  code: string | null;
  /** Revisions removed by the last pruning (older than the newest `keep` ready ones, used by no VM). */
  removed: { revision: number; imageId: string }[];
}

export interface GoldenRevision {
  revision: number;
  imageId: string;
  /** The upstream checksum this revision was downloaded for. */
  checksum: string | null;
  createdAt: Date;
  image: Image;
}

/** A revision the keep count would remove, kept because VMs use it. */
export interface KeptInUse {
  revision: number;
  imageId: string;
  vms: { id: string; name: string; uses: string[] }[];
}

export interface GoldenFollow {
  /** The golden image: the id of the image it was first followed on. */
  id: string;
  catalogId: string;
  poolId: string;
  schedule: string;
  keep: number;
  nextRunAt: Date;
  lastCheckAt: Date | null;
  lastCheck: GoldenCheck | null;
  /** The newest revision number given so far. */
  latestRevision: number;
  /** Revisions beyond `keep` that stay because VMs use them (worked out when asked). */
  keptInUse: KeptInUse[];
  createdAt: Date;
  updatedAt: Date;
}

export interface GoldenImageServiceOptions {
  knex: Knex;
  repositories: Repositories;
  downloads: Pick<DownloadService, 'download' | 'findEntry' | 'retry'>;
  images: Pick<ImageService, 'delete'>;
  /** The fetchers of this instance: the one for the entry's URL scheme reads its sums file. */
  fetchers: readonly ImageFetcher[];
  jobs: JobQueue;
  logger: Logger;
  /** How often due schedules are looked for (default 30 s): the granularity of a schedule. */
  tickSeconds?: number;
}

/** Looks for due schedules, on one replica at a time. */
export const GOLDEN_TICK_QUEUE = 'quantix-golden-tick';
/** One check per golden image and scheduled time, run once across replicas. */
export const GOLDEN_CHECK_QUEUE = 'quantix-golden-check';

/**
 * The next time a cron schedule fires after `after`, in UTC. Five fields (minute hour
 * day-of-month month day-of-week), or six with seconds first; `@daily` and the like too.
 * INVALID_INPUT with the parser's reason otherwise.
 */
export function nextRunOf(schedule: string, after: Date = new Date()): Date {
  try {
    return CronExpressionParser.parse(schedule, { currentDate: after, tz: 'UTC', strict: false }).next().toDate();
  } catch (error) {
    const reason = (error as Error).message;
    throw new QuantixError(ErrorCode.INVALID_INPUT, `Invalid schedule ${JSON.stringify(schedule)}: ${reason}`, {
      details: { issues: [{ path: 'schedule', message: reason }] },
    });
  }
}

const checksumText = (checksum: Checksum) => `${checksum.algorithm}:${checksum.value.toLowerCase()}`;

/** `images/x.qcow2` → `images/x.r2.qcow2`: revision N beside the first, in the same folder. */
export function revisionRelPath(relPath: string, revision: number): string {
  const slash = relPath.lastIndexOf('/');
  const dot = relPath.lastIndexOf('.');
  return dot > slash + 1 ? `${relPath.slice(0, dot)}.r${revision}${relPath.slice(dot)}` : `${relPath}.r${revision}`;
}

/** The first revision's file from revision N's: `images/x.r2.qcow2` → `images/x.qcow2`. */
export function firstRevisionRelPath(relPath: string, revision: number): string {
  return relPath.replace(new RegExp(`\\.r${revision}(?=(\\.[^./]*)?$)`), '');
}

/**
 * Golden images that follow upstream. An image downloaded from a catalog entry whose upstream
 * publishes a checksum file can be followed: on a cron schedule the sums file is read (one small
 * GET, through the instance's fetcher and its source policy), and when the entry's checksum
 * changed the new build is downloaded — through the one download lifecycle, resumable and
 * verified against the checksum just read — as a new image row: the next revision, in the same
 * pool. The newest `keep` ready revisions stay; older ones are removed, except those a VM uses
 * (the status names them). Schedules live in the database and are driven by the job queue: a
 * periodic singleton tick claims due rows (compare-and-set on next_run_at) and sends one check
 * job per golden image and scheduled time, so a check runs once across replicas and restarts.
 */
export class GoldenImageService {
  constructor(private readonly options: GoldenImageServiceOptions) {}

  /** Starts the schedule: the tick and the check worker on the job queue (started already). */
  async start(): Promise<void> {
    const { jobs, logger } = this.options;
    await jobs.define(GOLDEN_CHECK_QUEUE, { retryLimit: 2, retryDelaySeconds: 30, retryBackoff: true });
    // A check returns once a new build's download has started: one golden image's download never
    // holds up another's check.
    await jobs.work<{ goldenId: string }>(GOLDEN_CHECK_QUEUE, async (job) => {
      const check = await this.runCheck(job.data.goldenId);
      if (check) logger.info({ goldenId: job.data.goldenId, outcome: check.outcome }, 'golden image checked');
    });
    await jobs.every(GOLDEN_TICK_QUEUE, this.options.tickSeconds ?? 30, () => this.sendDueChecks());
  }

  /**
   * Follows upstream for an image (or changes how): the image must be ready and downloaded from
   * a catalog entry that has a checksum file. Following any revision of a golden image changes
   * that golden image; following a revision of one that was unfollowed follows it again, from
   * that revision on. The schedule is checked now: INVALID_INPUT with the reason.
   */
  async follow(imageId: string, settings: { schedule: string; keep: number }): Promise<GoldenFollow> {
    const { knex, repositories } = this.options;
    const nextRunAt = nextRunOf(settings.schedule);
    if (!Number.isInteger(settings.keep) || settings.keep < 1) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'keep must be a whole number of revisions, at least 1', {
        details: { issues: [{ path: 'keep', message: 'an integer >= 1' }] },
      });
    }
    const existing = await this.findGolden(imageId);
    if (existing) {
      await knex.raw(
        'update golden_images set schedule = ?, keep = ?, next_run_at = ?, updated_at = now() where id = ?',
        [settings.schedule, settings.keep, nextRunAt, existing.id],
      );
      return this.status(existing.id);
    }
    const image = await repositories.images.require(imageId);
    const former = formerRevision(image);
    const catalogId = image.catalogId ?? former?.catalogId;
    if (!catalogId || !image.location) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Image ${image.name} was not downloaded from a catalog entry; only a catalog image can follow upstream`,
        { details: { imageId, issues: [{ path: 'id', message: 'not a catalog image' }] } },
      );
    }
    const entry = await this.options.downloads.findEntry(catalogId);
    if (!entry.checksumUrl) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Catalog entry ${entry.id} publishes no checksum file (SHA256SUMS or the like), so there is nothing to follow`,
        { details: { catalogId: entry.id, issues: [{ path: 'id', message: 'catalog entry has no checksum file' }] } },
      );
    }
    this.checksumReader(entry);
    if (image.phase !== 'ready') {
      throw new QuantixError(
        ErrorCode.IMAGE_NOT_READY,
        `Image ${image.name} is ${image.phase}; follow it once it is ready, so later builds are compared with it`,
        { details: { imageId, phase: image.phase } },
      );
    }
    if (!image.checksum) {
      // Its file changed since it was downloaded (a scan found it at another size).
      throw new QuantixError(
        ErrorCode.IMAGE_NO_CHECKSUM,
        `Image ${image.name} has no recorded checksum to compare later builds with (its file changed since it was downloaded); verifying it (\`quantix images verify\`) records the file's`,
        { details: { imageId } },
      );
    }
    const { location } = image;
    const goldenId = former?.goldenId ?? image.id;
    const revision = former?.revision ?? 1;
    // Followed again after an unfollow: every revision still there is its own again, numbers go on
    // after the newest, and later builds are compared with the newest.
    const members = await this.revisionsOf(goldenId, { revision, image });
    const newest = members.reduce((a, b) => (b.revision > a.revision ? b : a));
    const compareWith = (newest.image.checksum ?? image.checksum) as Checksum;
    const inserted = await knex.transaction(async (trx) => {
      const made = await trx.raw(
        `insert into golden_images
           (id, catalog_id, pool_id, name, rel_path, schedule, keep, next_run_at, upstream_checksum, next_revision)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (id) do nothing returning id`,
        [
          goldenId,
          entry.id,
          location.poolId,
          former ? image.name.replace(` (r${revision})`, '') : image.name,
          former ? firstRevisionRelPath(location.relPath, revision) : location.relPath,
          settings.schedule,
          settings.keep,
          nextRunAt,
          checksumText(compareWith),
          newest.revision + 1,
        ],
      );
      if (rowsOf(made).length === 0) return false;
      await registerRevisions(trx, goldenId, members);
      return true;
    });
    // Followed by a request at the same time: it is followed; these settings are applied as the later ones.
    if (!inserted) return this.follow(imageId, settings);
    return this.status(goldenId);
  }

  /**
   * A golden image's revisions as the image rows tell them, for following it (again): the one
   * followed, those labelled as its revisions, and its first when a later one is followed.
   */
  private async revisionsOf(
    goldenId: string,
    followed: { revision: number; image: Image },
  ): Promise<{ revision: number; image: Image }[]> {
    const members = [followed, ...(await this.labelledRevisions(goldenId))];
    if (followed.revision !== 1) {
      const first = await this.options.repositories.images.get(goldenId);
      if (first && first.catalogId === followed.image.labels[GOLDEN_LABELS.catalogId])
        members.push({ revision: 1, image: first });
    }
    // Two rows claiming one number (labels edited by hand): the one followed, else the first found.
    const byRevision = new Map<number, { revision: number; image: Image }>();
    for (const member of members) if (!byRevision.has(member.revision)) byRevision.set(member.revision, member);
    return [...byRevision.values()];
  }

  /** The image rows labelled as revisions (after the first) of a golden image. */
  private async labelledRevisions(goldenId: string): Promise<{ revision: number; image: Image }[]> {
    const labelled = await this.options.repositories.images.list({ labels: { [GOLDEN_LABELS.goldenImage]: goldenId } });
    return labelled.flatMap((image) => {
      const former = formerRevision(image);
      return former ? [{ revision: former.revision, image }] : [];
    });
  }

  /** Stops following; every revision's image stays. NOT_FOUND when the image is not followed. */
  async unfollow(imageId: string): Promise<void> {
    const golden = await this.requireGolden(imageId);
    await this.options.knex.raw('delete from golden_images where id = ?', [golden.id]);
  }

  /** Every golden image that follows upstream, oldest first, each as `status` gives it. */
  async list(): Promise<GoldenFollow[]> {
    const rows = rowsOf(await this.options.knex.raw('select * from golden_images order by created_at, id'));
    // A golden image is a catalog entry followed in a pool: a handful, each planned as its status is.
    return Promise.all(
      rows.map(async (row) => {
        const golden = goldenOf(row);
        const { keptInUse } = await this.plan(golden.id, golden.keep);
        return { ...golden, keptInUse };
      }),
    );
  }

  /** The follow setting, the next run, the last check and the revisions kept because VMs use them. */
  async status(imageId: string): Promise<GoldenFollow> {
    const golden = await this.requireGolden(imageId);
    const { keptInUse } = await this.plan(golden.id, golden.keep);
    return { ...golden, keptInUse };
  }

  /** Every revision still there, newest first, with its image. */
  async revisions(imageId: string): Promise<GoldenRevision[]> {
    const golden = await this.requireGolden(imageId);
    const rows = rowsOf(
      await this.options.knex.raw(
        'select revision, image_id, checksum, created_at from golden_image_revisions where golden_id = ? order by revision desc',
        [golden.id],
      ),
    );
    // A handful of revisions (the keep count, plus those VMs hold): one read each.
    const images = await Promise.all(rows.map((row) => this.options.repositories.images.get(String(row.image_id))));
    return rows.flatMap((row, i) => {
      const image = images[i];
      if (!image) return []; // removed between the two reads
      return [
        {
          revision: Number(row.revision),
          imageId: image.id,
          checksum: (row.checksum as string | null) ?? null,
          createdAt: new Date(row.created_at as Date),
          image,
        },
      ];
    });
  }

  /**
   * Checks upstream now: the check's outcome (a new revision's download is started, not waited
   * for; the older revisions are pruned once it is ready). NOT_FOUND when the image is not followed.
   */
  async check(imageId: string): Promise<GoldenCheck> {
    const golden = await this.requireGolden(imageId);
    const check = await this.runCheck(golden.id);
    // Unfollowed meanwhile, or a check at the same moment got there first and has not said yet.
    if (!check) return this.requireGolden(golden.id).then((again) => again.lastCheck ?? unchangedYet());
    return check;
  }

  /** Claims the due schedules (each once, whichever replica ticks) and sends their checks. */
  private async sendDueChecks(): Promise<void> {
    const { knex, jobs, logger } = this.options;
    const due = rowsOf(
      await knex.raw(
        'select id, schedule, next_run_at from golden_images where next_run_at <= now() order by next_run_at',
      ),
    );
    for (const row of due) {
      const id = String(row.id);
      const dueAt = new Date(row.next_run_at as Date);
      let next: Date;
      try {
        next = nextRunOf(String(row.schedule));
      } catch (error) {
        logger.warn({ goldenId: id, err: error }, 'a stored schedule no longer parses; it is not run');
        continue;
      }
      const claimed = rowsOf(
        await knex.raw('update golden_images set next_run_at = ? where id = ? and next_run_at = ? returning id', [
          next,
          id,
          dueAt,
        ]),
      );
      if (claimed.length === 0) continue; // changed meanwhile (re-followed, or claimed elsewhere)
      await jobs.send(GOLDEN_CHECK_QUEUE, { goldenId: id }, { id: jobIdOf('golden-check', id, dueAt.toISOString()) });
    }
  }

  /** One check of a golden image; null when it is no longer followed, or another check took the change. */
  private async runCheck(goldenId: string): Promise<GoldenCheck | null> {
    const { knex, logger } = this.options;
    const golden = await this.getGolden(goldenId);
    if (!golden) return null;
    // A revision whose download started but whose number was not recorded (the database went
    // away between the two writes) is found by its labels.
    await registerRevisions(knex, goldenId, await this.labelledRevisions(goldenId));
    let entry: CatalogEntry;
    let upstream: Checksum;
    try {
      entry = await this.options.downloads.findEntry(golden.catalogId);
      const checksumUrl = entry.checksumUrl;
      if (!checksumUrl) {
        throw new QuantixError(
          ErrorCode.INVALID_INPUT,
          `Catalog entry ${entry.id} no longer publishes a checksum file; unfollow it, or follow another entry`,
          { details: { catalogId: entry.id } },
        );
      }
      upstream = await this.checksumReader(entry)({
        sourceUrl: entry.sourceUrl,
        checksumUrl,
        checksumAlgorithm: entry.checksumAlgorithm,
      });
    } catch (error) {
      // The fetcher reports a sums file without the entry's line with the file's name in its
      // details; any other failure (unreachable, not allowed, entry gone) is a failed check.
      const notListed = isQuantixError(error) && typeof error.details?.fileName === 'string';
      return this.record(goldenId, {
        outcome: notListed ? 'not-listed' : 'failed',
        message: notListed
          ? `The checksum file no longer lists this image (${(error as Error).message}); nothing was downloaded or removed`
          : `The check failed: ${(error as Error).message}`,
        checksum: null,
        revision: null,
        imageId: null,
        code: isQuantixError(error) ? error.code : ErrorCode.INTERNAL_ERROR,
        removed: [],
      });
    }
    const now = checksumText(upstream);
    const previous = await this.upstreamChecksum(goldenId);
    if (previous === now) {
      // Nothing new upstream. The build found last time whose download failed (the mirror away
      // then, a transfer that did not verify) is downloaded again: a schedule gets to the build it
      // found, not only to the next one. One cancelled on purpose is left as it is.
      const [newest] = await this.revisions(goldenId);
      const failed = newest?.checksum === now && newest.image.phase === 'error' ? newest.image.error : null;
      if (newest && failed?.retryable && failed.code !== ErrorCode.DOWNLOAD_CANCELLED) {
        const again = { checksum: now, revision: newest.revision, imageId: newest.imageId, removed: [] };
        try {
          await this.options.downloads.retry(newest.imageId);
        } catch (error) {
          return this.record(goldenId, {
            ...again,
            outcome: 'failed',
            message: `Upstream has not changed; revision ${newest.revision} had failed (${failed.code}), and its download could not start again: ${(error as Error).message}`,
            code: isQuantixError(error) ? error.code : ErrorCode.INTERNAL_ERROR,
          });
        }
        return this.record(goldenId, {
          ...again,
          outcome: 'unchanged',
          message: `Upstream has not changed; revision ${newest.revision} had failed (${failed.code}): downloading it again`,
          code: null,
        });
      }
      // Only what a new revision's pruning left undone (a restart while it downloaded, a node
      // away) is finished: usually nothing.
      const removed = await this.prune(goldenId);
      return this.record(goldenId, {
        outcome: 'unchanged',
        message: 'Upstream has not changed',
        checksum: now,
        revision: null,
        imageId: null,
        code: null,
        removed,
      });
    }
    // One new revision per upstream change, whoever checks at the same time.
    const claimed = rowsOf(
      await knex.raw(
        `update golden_images set upstream_checksum = ?, next_revision = next_revision + 1, updated_at = now()
         where id = ? and upstream_checksum is not distinct from ? returning next_revision - 1 as revision`,
        [now, goldenId, previous],
      ),
    )[0];
    if (!claimed) return null; // another check took this change at the same moment
    const revision = Number(claimed.revision);
    let handle: Awaited<ReturnType<DownloadService['download']>>;
    try {
      handle = await this.options.downloads.download({
        poolId: golden.poolId,
        source: { url: entry.sourceUrl, checksum: upstream },
        relPath: revisionRelPath(golden.relPath, revision),
        name: `${golden.name} (r${revision})`,
        description: entry.description,
        labels: {
          [GOLDEN_LABELS.goldenImage]: goldenId,
          [GOLDEN_LABELS.revision]: String(revision),
          [GOLDEN_LABELS.catalogId]: golden.catalogId,
        },
        // What a catalog download of the entry records: the entry is not named (one image per
        // entry and pool), so its facts are given.
        kind: entry.kind,
        format: entry.format,
        os: entry.os,
        requirements: entry.requirements,
      });
    } catch (error) {
      // Not started: the next check tries again (the revision number is not reused).
      await knex.raw('update golden_images set upstream_checksum = ? where id = ? and upstream_checksum = ?', [
        previous,
        goldenId,
        now,
      ]);
      return this.record(goldenId, {
        outcome: 'failed',
        message: `Upstream changed, but the download of revision ${revision} could not start: ${(error as Error).message}`,
        checksum: now,
        revision: null,
        imageId: null,
        code: isQuantixError(error) ? error.code : ErrorCode.INTERNAL_ERROR,
        removed: [],
      });
    }
    await registerRevisions(knex, goldenId, [{ revision, image: { ...handle.image, checksum: upstream } }]);
    const check = await this.record(goldenId, {
      outcome: 'new-revision',
      message: `Upstream changed: revision ${revision} is downloading`,
      checksum: now,
      revision,
      imageId: handle.image.id,
      code: null,
      removed: [],
    });
    handle.completion
      .then(async (image) => {
        if (image.phase !== 'ready') {
          logger.warn({ goldenId, revision, phase: image.phase }, 'a golden revision did not become ready');
          return;
        }
        const removed = await this.prune(goldenId);
        if (removed.length === 0) return;
        await knex.raw(
          `update golden_images set last_check = jsonb_set(last_check, '{removed}', ?::jsonb), updated_at = now()
           where id = ? and last_check is not null`,
          [JSON.stringify(removed), goldenId],
        );
      })
      .catch((error) => logger.error({ goldenId, err: error }, 'pruning golden revisions failed'));
    return check;
  }

  /** Removes the revisions older than the newest `keep` ready ones, except those VMs use; says which went. */
  private async prune(goldenId: string): Promise<GoldenCheck['removed']> {
    const golden = await this.getGolden(goldenId);
    if (!golden) return [];
    const { remove } = await this.plan(goldenId, golden.keep);
    const removed: GoldenCheck['removed'] = [];
    for (const candidate of remove) {
      try {
        await this.options.images.delete(candidate.imageId);
        removed.push(candidate);
      } catch (error) {
        // A VM made from it since the plan (IN_USE), or its node away: it stays, and the next
        // check tries again.
        this.options.logger.warn(
          { goldenId, revision: candidate.revision, err: error },
          'an old golden revision could not be removed',
        );
      }
    }
    return removed;
  }

  /**
   * Which revisions the keep count lets go: those older than the newest `keep` ready ones, not
   * busy; each a VM uses is kept and said so. Nothing goes while fewer than `keep` are ready.
   */
  private async plan(
    goldenId: string,
    keep: number,
  ): Promise<{ remove: { revision: number; imageId: string }[]; keptInUse: KeptInUse[] }> {
    const revisions = await this.revisions(goldenId);
    const ready = revisions.filter((r) => r.image.phase === 'ready');
    const oldestKept = ready[keep - 1];
    if (!oldestKept) return { remove: [], keptInUse: [] };
    const older = revisions.filter(
      (r) => r.revision < oldestKept.revision && ['ready', 'error', 'missing'].includes(r.image.phase),
    );
    if (older.length === 0) return { remove: [], keptInUse: [] };
    const vms = await this.options.repositories.vms.list();
    const remove: { revision: number; imageId: string }[] = [];
    const keptInUse: KeptInUse[] = [];
    for (const revision of older) {
      const users = vmsUsingImage(vms, revision.image);
      if (users.length === 0) remove.push({ revision: revision.revision, imageId: revision.imageId });
      else
        keptInUse.push({
          revision: revision.revision,
          imageId: revision.imageId,
          vms: users.map((u) => ({ id: u.vm.id, name: u.vm.name, uses: u.uses })),
        });
    }
    return { remove, keptInUse };
  }

  private async record(goldenId: string, check: GoldenCheck): Promise<GoldenCheck> {
    await this.options.knex.raw(
      'update golden_images set last_check_at = now(), last_check = ?::jsonb, updated_at = now() where id = ?',
      [JSON.stringify(check), goldenId],
    );
    return check;
  }

  private async upstreamChecksum(goldenId: string): Promise<string | null> {
    const row = rowsOf(
      await this.options.knex.raw('select upstream_checksum from golden_images where id = ?', [goldenId]),
    )[0];
    return (row?.upstream_checksum as string | null | undefined) ?? null;
  }

  /** What reads the entry's sums file: the fetcher for its URL scheme that can. */
  private checksumReader(entry: CatalogEntry): NonNullable<ImageFetcher['readChecksum']> {
    return checksumReaderFor(this.options.fetchers, entry);
  }

  private async requireGolden(
    imageId: string,
  ): Promise<Omit<GoldenFollow, 'keptInUse'> & { name: string; relPath: string }> {
    const golden = await this.findGolden(imageId);
    if (!golden) {
      throw new QuantixError(ErrorCode.NOT_FOUND, `Image ${imageId} does not follow upstream`, {
        details: { imageId },
      });
    }
    return golden;
  }

  /** The golden image an image belongs to: its own, or the one it is a revision of. */
  private async findGolden(imageId: string) {
    const row = rowsOf(
      await this.options.knex.raw(
        `select g.* from golden_images g
         where g.id = ? or g.id = (select golden_id from golden_image_revisions where image_id = ?)
         limit 1`,
        [imageId, imageId],
      ),
    )[0];
    return row ? goldenOf(row) : null;
  }

  private async getGolden(goldenId: string) {
    const row = rowsOf(await this.options.knex.raw('select * from golden_images where id = ?', [goldenId]))[0];
    return row ? goldenOf(row) : null;
  }
}

/** What a check says when a check at the same moment took the change and has not recorded it yet. */
function unchangedYet(): GoldenCheck {
  return {
    outcome: 'unchanged',
    message: 'Another check took this change at the same moment; see the follow status',
    checksum: null,
    revision: null,
    imageId: null,
    code: null,
    removed: [],
  };
}

/** Numbers image rows as a golden image's revisions; a row or number already taken is left as it is. */
async function registerRevisions(
  knex: Knex,
  goldenId: string,
  members: readonly { revision: number; image: Image }[],
): Promise<void> {
  for (const { revision, image } of members) {
    await knex.raw(
      `insert into golden_image_revisions (golden_id, revision, image_id, checksum) values (?, ?, ?, ?)
       on conflict do nothing`,
      [goldenId, revision, image.id, image.checksum ? checksumText(image.checksum) : null],
    );
  }
}

/** A revision (after the first) of a golden image, from its labels; null for any other image. */
function formerRevision(image: Image): { goldenId: string; revision: number; catalogId: string } | null {
  const goldenId = image.labels[GOLDEN_LABELS.goldenImage];
  const revision = Number(image.labels[GOLDEN_LABELS.revision]);
  const catalogId = image.labels[GOLDEN_LABELS.catalogId];
  if (!goldenId || !catalogId || !Number.isInteger(revision) || revision < 2) return null;
  return { goldenId, revision, catalogId };
}

function goldenOf(row: Record<string, unknown>): Omit<GoldenFollow, 'keptInUse'> & { name: string; relPath: string } {
  const lastCheck = row.last_check;
  return {
    id: String(row.id),
    catalogId: String(row.catalog_id),
    poolId: String(row.pool_id),
    name: String(row.name),
    relPath: String(row.rel_path),
    schedule: String(row.schedule),
    keep: Number(row.keep),
    nextRunAt: new Date(row.next_run_at as Date),
    lastCheckAt: row.last_check_at ? new Date(row.last_check_at as Date) : null,
    // jsonb: an object from both drivers (a string only if someone stored one).
    lastCheck: fromJson<GoldenCheck | null>(lastCheck ?? null),
    latestRevision: Number(row.next_revision) - 1,
    createdAt: new Date(row.created_at as Date),
    updatedAt: new Date(row.updated_at as Date),
  };
}
