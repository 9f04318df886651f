/**
 * VM consoles through the whole chain, with real parts: the all-in-one control plane, its node
 * agent, libvirt (qemu:///system) running a VM, socat on the node, and WebSocket clients as a
 * browser would open them. The VM boots SeaBIOS from an empty disk, which writes its banner to
 * the serial port (useserial): the first output a person sees in a console.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startSystem, type TestSystem } from './harness.js';

let system: TestSystem;
let vmId = '';
let vmName = '';

beforeAll(async () => {
  system = await startSystem();
  const { body: images } = await system.api('GET', `/images?catalogId=${system.catalog.readyId}`);
  vmName = `console-e2e-${Date.now().toString(36)}`;
  const created = await system.api('POST', '/vms', {
    name: vmName,
    nodeId: system.nodeId,
    imageId: images.images[0].id,
    memoryMiB: 64,
    diskGiB: 1,
  });
  if (created.status !== 201) throw new Error(`VM not created: ${JSON.stringify(created.body)}`);
  vmId = created.body.id;
}, 300_000);

afterAll(async () => {
  if (vmId) await system?.api('DELETE', `/vms/${vmId}`);
  await system?.stop();
});

/** Asks for a ticket and gives the console's ws:// URL. */
async function consoleUrl(type: 'serial' | 'vnc'): Promise<string> {
  const { status, body } = await system.api('POST', `/vms/${vmId}/console/tickets`, { type });
  expect(status).toBe(201);
  return `${system.url.replace(/^http/, 'ws')}${body.path}`;
}

/** An open console socket and everything it has received so far (from its first frame on). */
interface Viewer {
  socket: WebSocket;
  /** Resolves with all that was received once `done` says it is enough; rejects at the deadline or on close. */
  receive(done: (text: string) => boolean, timeoutMs?: number): Promise<string>;
}

/** Opens a WebSocket; resolves with it once open, or with the HTTP status that refused the upgrade. */
function dial(url: string): Promise<{ viewer: Viewer } | { refused: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    let text = '';
    let closed: string | null = null;
    const waiters = new Set<() => void>();
    // Frames are kept from the first: one may arrive in the same tick as the upgrade.
    socket.on('message', (data: Buffer) => {
      text += data.toString('latin1');
      for (const wake of waiters) wake();
    });
    socket.on('close', (code, reason) => {
      closed = `closed ${code} ${reason.toString()}`;
      for (const wake of waiters) wake();
    });
    const receive: Viewer['receive'] = (done, timeoutMs = 30_000) =>
      new Promise((resolveText, rejectText) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          rejectText(new Error(`timed out; received so far: ${JSON.stringify(text)}`));
        }, timeoutMs);
        const check = () => {
          if (done(text) || closed) {
            clearTimeout(timer);
            waiters.delete(check);
            if (done(text)) resolveText(text);
            else rejectText(new Error(`${closed}; received: ${JSON.stringify(text)}`));
          }
        };
        waiters.add(check);
        check();
      });
    socket.once('open', () => resolve({ viewer: { socket, receive } }));
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () => resolve({ refused: response.statusCode ?? 0, body }));
    });
    socket.once('error', reject);
  });
}

describe('VM console over a WebSocket, relayed by the node', () => {
  it('refuses a console socket without a ticket, with a wrong one, with one used already, and with the API token', async () => {
    const base = `${system.url.replace(/^http/, 'ws')}/api/v1/vms/${vmId}/console?type=serial`;
    for (const url of [base, `${base}&ticket=not-a-ticket`]) {
      const answer = await dial(url);
      expect(answer).toMatchObject({ refused: 401 });
      expect(JSON.parse((answer as { body: string }).body).error.code).toBe('UNAUTHORIZED');
    }
    const withApiToken = await new Promise<number>((resolve) => {
      const socket = new WebSocket(base, { headers: { authorization: `Bearer ${system.token}` } });
      socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
      socket.once('open', () => resolve(101));
    });
    expect(withApiToken).toBe(401);

    // A ticket for the serial console does not open the VNC one, and is spent by trying.
    const ticket = new URL(await consoleUrl('serial')).searchParams.get('ticket') ?? '';
    const wrongType = await dial(
      `${system.url.replace(/^http/, 'ws')}/api/v1/vms/${vmId}/console?type=vnc&ticket=${ticket}`,
    );
    expect(wrongType).toMatchObject({ refused: 401 });
    expect(await dial(`${base}&ticket=${ticket}`)).toMatchObject({ refused: 401 });

    // A ticket is only given with the API token.
    const response = await fetch(`${system.url}/api/v1/vms/${vmId}/console/tickets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'serial' }),
    });
    expect(response.status).toBe(401);
  });

  it('shows the serial console from its first line: SeaBIOS’s banner, as the VM wrote it', async () => {
    const opened = await dial(await consoleUrl('serial'));
    if (!('viewer' in opened)) throw new Error(`refused: ${opened.refused} ${opened.body}`);
    const { socket, receive } = opened.viewer;
    try {
      // The VM booted before anyone watched: what its firmware wrote waits on the console for
      // the first viewer, who sees it from the first line.
      const output = await receive(
        (text) => /SeaBIOS \(version [^)]+\)/.test(text) && text.includes('No bootable device'),
        45_000,
      );
      expect(output).toMatch(/SeaBIOS \(version [^)]+\)/);
      // Byte for byte what the VM wrote (its serial log on this host): nothing lost between what
      // was written before the viewer came and what came after, nothing rewritten by a terminal.
      const written = await readFile(`/var/log/libvirt/qemu/${vmName}-serial0.log`, 'latin1');
      const shorter = Math.min(written.length, output.length);
      expect(output.slice(0, shorter)).toBe(written.slice(0, shorter));
      expect(shorter).toBeGreaterThan(output.indexOf('No bootable device'));
    } finally {
      socket.close();
    }
  }, 120_000);

  it('relays the VNC display: the VM’s VNC server greets with its RFB version', async () => {
    const opened = await dial(await consoleUrl('vnc'));
    if (!('viewer' in opened)) throw new Error(`refused: ${opened.refused} ${opened.body}`);
    const { socket, receive } = opened.viewer;
    try {
      expect(await receive((text) => text.length >= 12)).toMatch(/^RFB 003\.00[0-9]\n/);
    } finally {
      socket.close();
    }
  }, 60_000);

  it('refuses the console of a VM that is not running with 409 CONSOLE_UNAVAILABLE, before any upgrade', async () => {
    const stopped = await system.api('POST', `/vms/${vmId}/stop`, { force: true });
    expect(stopped.status).toBe(200);
    const answer = await dial(await consoleUrl('serial'));
    expect(answer).toMatchObject({ refused: 409 });
    const { error } = JSON.parse((answer as { body: string }).body);
    expect(error.code).toBe('CONSOLE_UNAVAILABLE');
    expect(error.message).toMatch(/is not running/);
    expect((await system.api('POST', `/vms/${vmId}/start`)).status).toBe(200);
  }, 60_000);
});
