import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { ErrorCode, type Image, QuantixError, type Repositories } from '@quantix/core';
import type { Logger } from 'pino';
import { type NodeHub, nodeNotConnected } from '../hub/node-hub.js';
import { RelaySessions } from '../hub/relays.js';
import { nodesWithActivePool, poolNotActiveAnywhere } from '../nodes/placement.js';
import { SignedTickets } from '../tokens.js';

export interface ImageExportServiceOptions {
  repositories: Repositories;
  hub: NodeHub;
  logger: Logger;
  /** How long a node may take to open the file and dial its channel (default 15 s). */
  openTimeoutMs?: number;
  /** How long a download ticket lasts (default 5 minutes). */
  ticketTtlMs?: number;
  /** How long a copy ticket lasts (default 24 h): a node's resumable fetch of one image for a copy. */
  copyTicketTtlMs?: number;
  /**
   * The key download and copy tickets are signed with. Replicas given the same key accept each
   * other's tickets; without one, a random key of this process: its tickets work here only.
   */
  ticketKey?: Buffer;
}

/** A ready image as it can be streamed out: where its file is, and what describes its bytes. */
export interface ExportableImage {
  image: Image;
  /** The connected node that reads the file. */
  nodeId: string;
  poolId: string;
  relPath: string;
  /** The file's name, for Content-Disposition. */
  fileName: string;
  sizeBytes: number;
  /** The image's verified checksum, when it has one. */
  checksum: Image['checksum'];
  /** A strong validator of these bytes: the checksum when there is one, else id, size and row version. */
  etag: string;
}

/**
 * The location of a ready image, for what reads its file (an export, a copy): IMAGE_NOT_READY
 * for an image in another phase, IMAGE_NO_LOCATION for one in no pool.
 */
export function readyInPool(image: Image, what: 'exported' | 'copied' | 'verified'): NonNullable<Image['location']> {
  if (image.phase !== 'ready') {
    throw new QuantixError(
      ErrorCode.IMAGE_NOT_READY,
      `Image ${image.name} is ${image.phase}, not ready: only a ready image is ${what}`,
      { details: { imageId: image.id, phase: image.phase } },
    );
  }
  if (!image.location) {
    throw new QuantixError(ErrorCode.IMAGE_NO_LOCATION, `Image ${image.name} has no location in a pool`, {
      details: { imageId: image.id },
    });
  }
  return image.location;
}

/** An inclusive byte range of a file. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Streams ready images out of the pool that holds them. The control plane cannot read a node's
 * pool, so it asks the node (file.export) to open the file and push the range asked for as the
 * body of an HTTP request it makes back (RelaySessions, as consoles do); the caller pipes that to its
 * client. Nothing is buffered whole: the node reads at the pace the channel drains, and a caller
 * that destroys the stream (its client went away) closes the channel, which ends the node's read.
 */
export class ImageExportService {
  private readonly relays = new RelaySessions<Readable>();
  /** Download tickets: several requests each (a download resumed with Range) until they expire. */
  private readonly tickets: SignedTickets<{ imageId: string }>;
  /** Copy tickets: a node's fetch of one image for a copy, resumed for as long as it takes (24 h). */
  private readonly copyTickets: SignedTickets<{ imageId: string }>;

  constructor(private readonly options: ImageExportServiceOptions) {
    // Signed, not remembered: a ticket minted here is good on every replica holding the key.
    const key = options.ticketKey ?? randomBytes(32);
    this.tickets = new SignedTickets(key, 'image-download', options.ticketTtlMs ?? 5 * 60_000);
    this.copyTickets = new SignedTickets(key, 'image-copy', options.copyTicketTtlMs ?? 24 * 3600_000);
  }

  /**
   * A ticket for a node to fetch image `imageId`'s content for a copy. Minted each time a copy's
   * download is (re)launched, never recorded: a resumed copy never presents an expired one.
   */
  issueCopyTicket(imageId: string): { ticket: string; expiresAt: Date } {
    return this.copyTickets.issue({ imageId });
  }

  /**
   * A ticket to fetch image `imageId`'s content without the API token, for `ticketTtlMs` (default
   * 5 minutes): a browser's download link cannot send headers. It opens that image only.
   */
  async issueTicket(imageId: string): Promise<{ ticket: string; imageId: string; expiresAt: Date }> {
    await this.options.repositories.images.require(imageId);
    return { ...this.tickets.issue({ imageId }), imageId };
  }

  /** True when `ticket` was issued for image `imageId` and has not expired. */
  checkTicket(ticket: string, imageId: string): boolean {
    return (this.tickets.check(ticket) ?? this.copyTickets.check(ticket))?.imageId === imageId;
  }

  /**
   * Everything that must hold before a byte is asked for, each with its own code: the image
   * exists (NOT_FOUND), is ready (IMAGE_NOT_READY), has a location (IMAGE_NO_LOCATION) and a
   * connected node holds its pool active (NODE_NOT_CONNECTED, POOL_NOT_ACTIVE_ON_NODE) — connected
   * here, or to another replica when this one has a URL the node can dial back to.
   */
  async prepare(imageId: string): Promise<ExportableImage> {
    const { repositories, hub } = this.options;
    const image = await repositories.images.require(imageId);
    const { poolId, relPath } = readyInPool(image, 'exported');
    // A node whose link is here first; else one held by another replica, which dials back here.
    const here = { isConnected: (nodeId: string) => hub.isConnectedHere(nodeId) };
    let [nodeId] = await nodesWithActivePool({ repositories, hub: here, poolId, nodeId: image.nodeId });
    if (!nodeId) {
      [nodeId] = await nodesWithActivePool({ repositories, hub, poolId, nodeId: image.nodeId });
      if (nodeId) await hub.requireDialBack(nodeId, `so image ${image.name} cannot be exported here`, { imageId });
    }
    if (!nodeId) {
      if (image.nodeId && !(await hub.isConnectedNow(image.nodeId))) {
        throw nodeNotConnected(image.nodeId, `so image ${image.name} cannot be read`, { imageId });
      }
      throw await poolNotActiveAnywhere({
        repositories,
        hub,
        pool: poolId,
        nodeId: image.nodeId,
        consequence: `so image ${image.name} cannot be read`,
        details: { imageId },
      });
    }
    const sizeBytes =
      image.sizeBytes ??
      (await hub.request(nodeId, { op: 'file.stat', poolId, relPath }, { timeoutMs: 30_000 })).sizeBytes;
    if (sizeBytes === null) {
      throw new QuantixError(ErrorCode.IMAGE_FILE_MISSING, `Image ${image.name} has no file at ${relPath}`, {
        details: { imageId, poolId, relPath },
      });
    }
    const checksum = image.checksum;
    return {
      image,
      nodeId,
      poolId,
      relPath,
      fileName: posix.basename(relPath),
      sizeBytes,
      checksum,
      etag: checksum ? `"${checksum.algorithm}-${checksum.value}"` : `"${image.id}-${sizeBytes}-${image.version}"`,
    };
  }

  /**
   * The bytes of `range` of a prepared image, as the node streams them. The stream fails (rather
   * than ends) when the node's channel closes before the last byte, so a caller never passes a
   * short body off as whole.
   */
  async open(target: ExportableImage, range: ByteRange): Promise<Readable> {
    const { hub, logger } = this.options;
    const timeoutMs = this.options.openTimeoutMs ?? 15_000;
    const channel = await this.relays.open(
      target.nodeId,
      (sessionId) =>
        hub.requestDialBack(
          target.nodeId,
          {
            op: 'file.export',
            sessionId,
            poolId: target.poolId,
            relPath: target.relPath,
            start: range.start,
            end: range.end,
            expectedSize: target.sizeBytes,
          },
          { timeoutMs },
        ),
      {
        timeoutMs,
        timedOut: () =>
          new QuantixError(
            ErrorCode.NODE_NOT_CONNECTED,
            `Node ${target.nodeId} did not start streaming image ${target.image.name} within ${timeoutMs} ms`,
          ),
      },
    );
    logger.info({ imageId: target.image.id, nodeId: target.nodeId, ...range }, 'image export started');
    const body = new ExactLength(range.end - range.start + 1);
    // Either end closing closes the other: a client gone destroys `body`, which closes the channel.
    pipeline(channel, body, (error) => {
      if (error) {
        channel.destroy();
        logger.info({ imageId: target.image.id, reason: error.message }, 'image export ended early');
      }
    });
    return body;
  }

  /** Takes a node's channel for a file.export it was asked for (false: none waits under that id). */
  attachRelay(nodeId: string, sessionId: string, channel: Readable): boolean {
    return this.relays.attach(nodeId, sessionId, channel);
  }
}

/** Passes bytes through and fails at the end unless exactly `expected` bytes came. */
class ExactLength extends Transform {
  private seen = 0;

  constructor(private readonly expected: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.expected) done(new Error(`the node sent more than the ${this.expected} bytes asked for`));
    else done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    done(
      this.seen === this.expected
        ? null
        : new Error(`the node's stream ended after ${this.seen} of ${this.expected} bytes`),
    );
  }
}
