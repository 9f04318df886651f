/**
 * The start of a VNC (RFB 3.8, RFC 6143) viewer for bench/console: the greeting and the
 * handshake with no authentication, up to the server's ServerInit. The same
 * code runs over a plain TCP socket (the peer) and over the console WebSocket (Quantix), so the
 * two sides differ only in the path the bytes take.
 */

/** A byte pipe to a VNC server: what a viewer writes, and the bytes it is sent. */
export interface ByteLink {
  write(data: Buffer): void;
  onData(listener: (data: Buffer) => void): void;
  close(): void;
}

/** Bytes as they arrive, read by count. */
class ByteQueue {
  private pending: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;

  push(data: Buffer): void {
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    this.waiter?.();
  }

  async read(n: number): Promise<Buffer> {
    while (this.pending.length < n) await new Promise<void>((resolve) => (this.waiter = resolve));
    this.waiter = undefined;
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }
}

export interface RfbSession {
  width: number;
  height: number;
  name: string;
}

/** Reads the server's greeting (12 bytes, "RFB 003.00x\n"); resolves with it. */
export async function rfbGreeting(link: ByteLink): Promise<{ greeting: string; queue: ByteQueue }> {
  const queue = new ByteQueue();
  link.onData((data) => queue.push(data));
  return { greeting: (await queue.read(12)).toString('latin1'), queue };
}

/**
 * The rest of the handshake after the greeting: RFB 3.8, security "None", a shared session, up
 * to the server's ServerInit. Three round trips, each answered by QEMU at once (its framebuffer
 * updates, unlike these, wait for its display refresh timer: no measure of a path).
 */
export async function rfbHandshake(link: ByteLink, queue: ByteQueue): Promise<RfbSession> {
  link.write(Buffer.from('RFB 003.008\n', 'latin1'));
  const types = await queue.read((await queue.read(1))[0] as number);
  if (!types.includes(1)) throw new Error(`the VNC server asks for authentication (types ${[...types]})`);
  link.write(Buffer.from([1]));
  const result = (await queue.read(4)).readUInt32BE(0);
  if (result !== 0) throw new Error(`VNC security result ${result}`);
  link.write(Buffer.from([1])); // ClientInit: shared
  const init = await queue.read(24);
  const name = (await queue.read(init.readUInt32BE(20))).toString('utf8');
  return { width: init.readUInt16BE(0), height: init.readUInt16BE(2), name };
}
