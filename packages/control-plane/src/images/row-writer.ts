import {
  ErrorCode,
  type Image,
  type ImageError,
  type ImagePatch,
  type ImagePhase,
  type ImageRepository,
  isQuantixError,
  QuantixError,
} from '@quantix/core';

/**
 * Serialises one job's writes to its row, each with the version of the previous one. A
 * VERSION_CONFLICT or NOT_FOUND means the row is no longer the job's: `lost` is set, `onLost`
 * stops the job, and nothing more is written.
 */
export class RowWriter {
  current: Image;
  lost = false;
  busy = false;
  onLost: () => void = () => undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly images: ImageRepository,
    image: Image,
    private readonly onPhase: (from: ImagePhase, to: ImagePhase, error: ImageError | null) => void,
  ) {
    this.current = image;
  }

  write(patch: ImagePatch): Promise<Image> {
    const run = async (): Promise<Image> => {
      if (this.lost)
        throw new QuantixError(ErrorCode.VERSION_CONFLICT, `Image ${this.current.id} changed under the download`);
      // A phase the row is already in is a no-op change of phase; skip it to keep the log clean.
      const body: ImagePatch = { ...patch };
      if (body.phase === this.current.phase && Object.keys(body).length === 1) return this.current;
      this.busy = true;
      try {
        const before = this.current.phase;
        const updated = await this.images.update(this.current.id, body, { expectedVersion: this.current.version });
        this.current = updated;
        if (body.phase !== undefined && body.phase !== before) this.onPhase(before, body.phase, updated.error);
        return updated;
      } catch (error) {
        if (isQuantixError(error, ErrorCode.VERSION_CONFLICT) || isQuantixError(error, ErrorCode.NOT_FOUND)) {
          this.lost = true;
          this.onLost();
        }
        throw error;
      } finally {
        this.busy = false;
      }
    };
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Waits for the writes queued so far. */
  async idle(): Promise<void> {
    await this.chain;
  }
}
