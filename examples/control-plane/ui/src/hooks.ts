import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ApiError, client } from './api.js';
import { type LiveEvent, type LiveKind, subscribeLive } from './live.js';

/**
 * How often data that follows live events is fetched anyway: a safety net for a change no event
 * tells of (a pool defined by the CLI, say), not the way the page stays current.
 */
export const SAFETY_REFRESH_MS = 60_000;

/** Events coming in a burst (a pool becoming active on every node) cause one fetch, not one each. */
const RELOAD_DEBOUNCE_MS = 250;

export interface Polled<T> {
  data: T | undefined;
  /** The last failure; the last good data stays shown beside it. */
  error: Error | undefined;
  loading: boolean;
  updatedAt: number | undefined;
  reload(): void;
  /** Changes the data shown (a record fetched after an event), until the next load. */
  mutate(update: (data: T) => T): void;
}

/**
 * How a live event changes the data: the new data, 'reload' to fetch it again, null when the
 * event does not concern it.
 */
export type ApplyEvent<T> = (data: T, event: LiveEvent) => T | 'reload' | null;

export interface LiveOptions<T> {
  /** The kinds of resource the data shows. */
  kinds: readonly LiveKind[];
  /** Default: an event of those kinds fetches the data again. */
  apply?: ApplyEvent<T>;
}

/**
 * Loads now and again after each answer (never two requests at once). When `deps` change the
 * old data is dropped, so a page never shows one node's data under another node's name. With
 * `live`, it follows the live events between loads (applies them, or fetches again), and fetches
 * again after the event stream reconnects; `intervalMs` is then only a safety net.
 */
export function usePoll<T>(
  load: (signal: AbortSignal) => Promise<T>,
  options: {
    intervalMs: number | ((data: T | undefined) => number);
    deps: readonly unknown[];
    enabled?: boolean;
    live?: LiveOptions<T>;
  },
): Polled<T> {
  const key = JSON.stringify(options.deps);
  const enabled = options.enabled ?? true;
  const [state, setState] = useState<{ key: string; data?: T; error?: Error; updatedAt?: number; loading: boolean }>({
    key,
    loading: true,
  });
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  const intervalRef = useRef(options.intervalMs);
  intervalRef.current = options.intervalMs;
  const liveRef = useRef(options.live);
  liveRef.current = options.live;
  const stateRef = useRef(state);
  stateRef.current = state;
  const keyRef = useRef(key);
  keyRef.current = key;
  const following = Boolean(options.live);

  useEffect(() => {
    if (!enabled || !following) return;
    let reloadTimer: ReturnType<typeof setTimeout> | undefined;
    const reloadSoon = () => {
      reloadTimer ??= setTimeout(() => {
        reloadTimer = undefined;
        setNonce((n) => n + 1);
      }, RELOAD_DEBOUNCE_MS);
    };
    const unsubscribe = subscribeLive((event) => {
      const live = liveRef.current;
      if (!live || event.kind === 'all' || !live.kinds.includes(event.kind)) return;
      const current = stateRef.current;
      if (!live.apply) return reloadSoon();
      if (current.key !== keyRef.current || current.data === undefined) return;
      const applied = live.apply(current.data, event);
      if (applied === 'reload') reloadSoon();
      else if (applied !== null) {
        const next = { ...current, data: applied };
        stateRef.current = next; // the next event of this burst applies to this one
        setState(next);
      }
    }, reloadSoon);
    return () => {
      unsubscribe();
      clearTimeout(reloadTimer);
    };
  }, [enabled, following]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: key stands for options.deps; nonce is the reload signal
  useEffect(() => {
    if (!enabled) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let latest: T | undefined;
    const tick = async () => {
      try {
        latest = await loadRef.current(controller.signal);
        if (controller.signal.aborted) return;
        setState({ key, data: latest, updatedAt: Date.now(), loading: false });
      } catch (error) {
        if (controller.signal.aborted) return;
        setState((s) => ({ ...(s.key === key ? s : { key }), error: error as Error, loading: false }));
      }
      const interval = intervalRef.current;
      const ms = typeof interval === 'function' ? interval(latest) : interval;
      // A hidden tab asks less often; it catches up as soon as it is looked at again.
      timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
    };
    void tick();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [key, nonce, enabled]);

  const current: { data?: T; error?: Error; updatedAt?: number; loading: boolean } =
    state.key === key ? state : { loading: true };
  return {
    data: current.data,
    error: current.error,
    loading: current.loading,
    updatedAt: current.updatedAt,
    reload: useCallback(() => setNonce((n) => n + 1), []),
    mutate: useCallback(
      (update: (data: T) => T) =>
        setState((s) => (s.key === keyRef.current && s.data !== undefined ? { ...s, data: update(s.data) } : s)),
      [],
    ),
  };
}

/** The registered nodes, following their connections as they happen. */
export function useNodeList() {
  return usePoll((signal) => client.request('listNodes', { signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [],
    live: { kinds: ['node'] },
  });
}

/** Calls `handler` with every live event while the component is shown. */
export function useLiveEvents(handler: (event: LiveEvent) => void): void {
  const handlerRef = useRef(handler);
  handlerRef.current = handler;
  useEffect(
    () =>
      subscribeLive(
        (event) => handlerRef.current(event),
        () => {},
      ),
    [],
  );
}

// One shared one-second clock for every "… ago" on the page.
const clockListeners = new Set<() => void>();
let clockNow = Date.now();
let clockTimer: ReturnType<typeof setInterval> | undefined;
function subscribeClock(listener: () => void) {
  clockListeners.add(listener);
  if (!clockTimer) {
    clockTimer = setInterval(() => {
      clockNow = Date.now();
      for (const l of clockListeners) l();
    }, 1000);
  }
  return () => {
    clockListeners.delete(listener);
    if (clockListeners.size === 0 && clockTimer) {
      clearInterval(clockTimer);
      clockTimer = undefined;
    }
  };
}

export function useNow(): number {
  return useSyncExternalStore(subscribeClock, () => clockNow);
}

// History-API routing: the server answers index.html for every non-API path.
const NAVIGATE = 'quantix:navigate';
function subscribeRoute(listener: () => void) {
  window.addEventListener('popstate', listener);
  window.addEventListener(NAVIGATE, listener);
  return () => {
    window.removeEventListener('popstate', listener);
    window.removeEventListener(NAVIGATE, listener);
  };
}

export function useLocation(): { pathname: string; search: string } {
  const href = useSyncExternalStore(subscribeRoute, () => `${window.location.pathname}${window.location.search}`);
  const url = new URL(href, window.location.origin);
  return { pathname: url.pathname, search: url.search };
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event(NAVIGATE));
}

export interface Action {
  busy: boolean;
  /** A failure that is not about one field. */
  error: Error | null;
  /** The API's validation errors by field (`body.name` → `name`). */
  fieldErrors: Record<string, string>;
  /** Runs one action; its result, or undefined when it failed (the failure is in error/fieldErrors). */
  run<T>(work: () => Promise<T>): Promise<T | undefined>;
}

/** One action at a time on a form or a row; `after` runs when it ends either way (a reload, say). */
export function useAction(options: { after?: () => void } = {}): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const after = useRef(options.after);
  after.current = options.after;
  const run = useCallback(async <T>(work: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    setFieldErrors({});
    try {
      return await work();
    } catch (e) {
      const fields = e instanceof ApiError ? e.fieldErrors() : {};
      setFieldErrors(fields);
      if (Object.keys(fields).length === 0) setError(e as Error);
      return undefined;
    } finally {
      setBusy(false);
      after.current?.();
    }
  }, []);
  return { busy, error, fieldErrors, run };
}
