import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'react';
import { ApiError, client } from '../api.js';
import { ErrorAlert, Link } from '../components.js';
import { SAFETY_REFRESH_MS, useLocation, usePoll } from '../hooks.js';

type ConsoleType = 'serial' | 'vnc';

/** What the viewer says about its connection, in words a person reads. */
type Status =
  | { state: 'connecting' }
  | { state: 'connected' }
  | { state: 'closed'; reason: string }
  | { state: 'failed'; error: Error };

/**
 * A VM's console: its serial port in a terminal (xterm.js), or its display (noVNC). Browsers
 * cannot put the API token on a WebSocket, so the page asks for a single-use ticket with the
 * token first and opens the console's socket with the ticket in its address.
 */
export function ConsolePage() {
  const { search } = useLocation();
  const params = new URLSearchParams(search);
  const vmId = params.get('id') ?? '';
  const type: ConsoleType = params.get('type') === 'vnc' ? 'vnc' : 'serial';
  const vm = usePoll((signal) => client.request('showVm', { params: { id: vmId }, signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [vmId],
    live: { kinds: ['vm'] },
  });
  const name = vm.data?.name ?? vmId;
  const [attempt, setAttempt] = useState(0);
  const tab = (to: ConsoleType, label: string) => (
    <Link
      to={`/vms/console?id=${encodeURIComponent(vmId)}&type=${to}`}
      className={`tab${to === type ? ' tab-current' : ''}`}
      aria-current={to === type ? 'page' : undefined}
    >
      {label}
    </Link>
  );
  return (
    <section aria-labelledby="console-heading">
      <div className="page-head">
        <h1 id="console-heading">Console of {name}</h1>
        <Link to="/vms">Back to VMs</Link>
      </div>
      <nav aria-label="Console kind" className="tabs">
        {tab('serial', 'Serial console')}
        {tab('vnc', 'Display (VNC)')}
      </nav>
      {vm.data && vm.data.state !== 'running' && (
        <p className="alert alert-warn" role="note">
          {name} is {vm.data.state}: its console shows nothing until it runs.
        </p>
      )}
      {/* A new viewer per VM, kind and attempt: the old one's socket closes with it. */}
      <Viewer
        key={`${vmId}/${type}/${attempt}`}
        vmId={vmId}
        type={type}
        name={name}
        onReconnect={() => setAttempt((n) => n + 1)}
      />
    </section>
  );
}

function Viewer({
  vmId,
  type,
  name,
  onReconnect,
}: {
  vmId: string;
  type: ConsoleType;
  name: string;
  onReconnect: () => void;
}) {
  const screen = useRef<HTMLElement>(null);
  const [status, setStatus] = useState<Status>({ state: 'connecting' });

  useEffect(() => {
    const target = screen.current;
    if (!target) return;
    let cancelled = false;
    let dispose = () => {};
    setStatus({ state: 'connecting' });
    (async () => {
      const { path } = await client.request('createVmConsoleTicket', { params: { id: vmId }, body: { type } });
      if (cancelled) return;
      // The ticket's path is under the API prefix already; only the scheme and host are added.
      const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}${path}`;
      // Each viewer is loaded when it is first shown: either is larger than the rest of the UI.
      if (type === 'serial') {
        const { Terminal } = await import('@xterm/xterm');
        if (!cancelled) dispose = openSerial(new Terminal(TERMINAL_OPTIONS), target, url, setStatus);
      } else {
        const { default: RFB } = await import('@novnc/novnc');
        if (!cancelled) dispose = openVnc(new RFB(target, url), setStatus);
      }
    })().catch((error: unknown) => {
      if (!cancelled) setStatus({ state: 'failed', error: error instanceof Error ? error : new Error(String(error)) });
    });
    return () => {
      cancelled = true;
      dispose();
    };
  }, [vmId, type]);

  return (
    <div className="console">
      <div className="console-bar">
        <span role="status" aria-label="Console status" className={`console-status console-${status.state}`}>
          {status.state === 'connecting' && 'Connecting…'}
          {status.state === 'connected' &&
            `Connected to the ${type === 'serial' ? 'serial console' : 'display'} of ${name}`}
          {status.state === 'closed' && `Disconnected: ${status.reason}`}
          {status.state === 'failed' && 'Not connected'}
        </span>
        {(status.state === 'closed' || status.state === 'failed') && (
          <button type="button" onClick={onReconnect}>
            Reconnect
          </button>
        )}
      </div>
      {status.state === 'failed' && <ErrorAlert error={status.error} title="The console could not be opened" />}
      <section
        ref={screen}
        className={`console-screen console-${type}`}
        aria-label={type === 'serial' ? `Serial console of ${name}` : `Display of ${name}`}
      />
    </div>
  );
}

/** Why a console socket closed, from its close event (the API's refusals come before it opens). */
function closeReason(event: CloseEvent): string {
  if (event.reason) return event.reason;
  return event.code === 1000 || event.code === 1005 ? 'the console was closed' : `connection lost (${event.code})`;
}

const TERMINAL_OPTIONS = { convertEol: false, cursorBlink: true, fontSize: 14, rows: 30, cols: 100 };

/** A terminal on the serial console: the VM's bytes in, keystrokes out. */
function openSerial(
  terminal: import('@xterm/xterm').Terminal,
  target: HTMLElement,
  url: string,
  setStatus: (status: Status) => void,
): () => void {
  terminal.open(target);
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  let opened = false;
  socket.onopen = () => {
    opened = true;
    setStatus({ state: 'connected' });
    terminal.focus();
  };
  socket.onmessage = (event) => {
    terminal.write(typeof event.data === 'string' ? event.data : new Uint8Array(event.data as ArrayBuffer));
  };
  socket.onclose = (event) => {
    setStatus(
      opened
        ? { state: 'closed', reason: closeReason(event) }
        : {
            state: 'failed',
            error: new ApiError(
              0,
              'CONSOLE_UNAVAILABLE',
              'The console was refused: is the VM running and its node connected?',
            ),
          },
    );
  };
  const input = terminal.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(new TextEncoder().encode(data));
  });
  return () => {
    input.dispose();
    socket.onclose = null;
    socket.close();
    terminal.dispose();
  };
}

/** noVNC on the VM's display. */
function openVnc(rfb: import('@novnc/novnc').default, setStatus: (status: Status) => void): () => void {
  rfb.scaleViewport = true;
  let opened = false;
  const onConnect = () => {
    opened = true;
    setStatus({ state: 'connected' });
  };
  const onDisconnect = (event: CustomEvent<{ clean: boolean }>) => {
    setStatus(
      opened
        ? { state: 'closed', reason: event.detail.clean ? 'the display was closed' : 'connection lost' }
        : {
            state: 'failed',
            error: new ApiError(
              0,
              'CONSOLE_UNAVAILABLE',
              'The display was refused: is the VM running and its node connected?',
            ),
          },
    );
  };
  rfb.addEventListener('connect', onConnect);
  rfb.addEventListener('disconnect', onDisconnect as EventListener);
  return () => {
    rfb.removeEventListener('disconnect', onDisconnect as EventListener);
    rfb.disconnect();
  };
}
