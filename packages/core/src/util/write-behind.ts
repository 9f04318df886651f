import type { FileHandle } from 'node:fs/promises';

/**
 * Bytes written between two background flushes. The page cache holds gigabytes before the kernel
 * writes them back by itself, so an fsync before a rename flushed a whole file at once (45 ms
 * for 64 MiB here, seconds for a few GiB) after its last byte had arrived; flushed as it
 * arrives, it leaves a few MiB for the end.
 */
const WRITE_BEHIND_BYTES = 32 * 1024 * 1024;

/**
 * Flushes a file to disk in the background while it is being written: after every
 * `everyBytes` written it starts an fdatasync on the same descriptor (one at a time) and goes
 * on. The writer calls `wrote` after each write, `settle` before its final fsync, and `idle`
 * before closing the descriptor. A flush that fails fails the next `wrote` or the `settle`: a
 * writeback error is reported once, so it must not be left for a final fsync (on another
 * descriptor, or after a close) to miss.
 */
export class WriteBehind {
  private flushing: Promise<void> | null = null;
  private failure: Error | null = null;
  private unflushed = 0;
  /** Bytes up to which a background flush has put the file on disk (as `wrote` counted them). */
  flushedBytes = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly everyBytes = WRITE_BEHIND_BYTES,
  ) {}

  /** Throws the failure of a background flush, if one failed. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** `bytes` more were written, ending at `position`; may start a flush. */
  wrote(bytes: number, position: number): void {
    this.check();
    this.unflushed += bytes;
    if (this.unflushed < this.everyBytes || this.flushing) return;
    this.unflushed = 0;
    this.flushing = this.handle.datasync().then(
      () => {
        this.flushedBytes = Math.max(this.flushedBytes, position);
        this.flushing = null;
      },
      (error: Error) => {
        this.failure = error;
        this.flushing = null;
      },
    );
  }

  /** Waits for the flush under way, then throws if any flush failed. */
  async settle(): Promise<void> {
    await this.idle();
    this.check();
  }

  /** Waits for the flush under way (it uses the descriptor), whatever its outcome. */
  async idle(): Promise<void> {
    await this.flushing;
  }
}
