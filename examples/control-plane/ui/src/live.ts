/**
 * The control plane's live events, one EventSource per tab shared by every page: opened with a
 * single-use ticket (an EventSource cannot send the token), opened again with a new ticket
 * whenever it drops. Pages fetch once and then follow the events; after a reconnect (events may
 * have been missed) or a `resync` event, each fetches what it shows once more.
 */
import type { components } from '@quantix/client';
import { ApiError, client, tokenStore } from './api.js';

export type LiveEvent = components['schemas']['LiveEvent'];
export type LiveKind = Exclude<LiveEvent['kind'], 'all'>;

type Listener = (event: LiveEvent) => void;

const RECONNECT_MS = 3000;
const listeners = new Set<Listener>();
const resyncListeners = new Set<() => void>();
let source: EventSource | null = null;
let connecting = false;
let retryTimer: ReturnType<typeof setTimeout> | undefined;

function resync(): void {
  for (const listener of resyncListeners) listener();
}

function retryLater(): void {
  if (retryTimer || listeners.size === 0) return;
  retryTimer = setTimeout(() => {
    retryTimer = undefined;
    connect();
  }, RECONNECT_MS);
}

function connect(): void {
  if (source || connecting || retryTimer || listeners.size === 0) return;
  // Without a token the page shows its prompt; a page that gets one subscribes again.
  if (!tokenStore.get()) return;
  connecting = true;
  client
    .request('createEventTicket')
    .then(({ path }) => {
      const opened = new EventSource(path);
      source = opened;
      // Opening is the moment from which nothing is missed: what was fetched before may be stale.
      opened.onopen = resync;
      opened.onmessage = (message: MessageEvent<string>) => {
        const event = JSON.parse(message.data) as LiveEvent;
        if (event.type === 'resync') {
          resync();
          return;
        }
        for (const listener of listeners) listener(event);
      };
      // EventSource would retry with the same ticket, which is spent: a new one instead.
      opened.onerror = () => {
        opened.close();
        if (source === opened) source = null;
        retryLater();
      };
    })
    // A refused token is the token prompt's business (the client reports it); the page subscribes
    // again once it has a new one. Anything else (the control plane restarting) is tried again.
    .catch((error: unknown) => {
      if (!(error instanceof ApiError && error.status === 401)) retryLater();
    })
    .finally(() => {
      connecting = false;
    });
}

/**
 * Calls `onEvent` with every live event and `onResync` when what was fetched may be stale;
 * the returned function unsubscribes. The stream opens with the first subscriber.
 */
export function subscribeLive(onEvent: Listener, onResync: () => void): () => void {
  listeners.add(onEvent);
  resyncListeners.add(onResync);
  connect();
  return () => {
    listeners.delete(onEvent);
    resyncListeners.delete(onResync);
  };
}

interface ImageLike {
  id: string;
  phase: Extract<LiveEvent, { type: 'image.phase' }>['phase'];
  progress: Extract<LiveEvent, { type: 'image.progress' }>['progress'] | null;
  error: Extract<LiveEvent, { type: 'image.phase' }>['error'];
}

/**
 * A download's progress and an image's phase, applied to a page of images in place; a phase of
 * an image not on the page may be a new image: fetch the page again. An image on the page changed
 * by a user or deleted (`image.changed`): fetch the page again.
 */
export function applyToImages<Page extends { images: ImageLike[] }>(
  page: Page,
  event: LiveEvent,
): Page | 'reload' | null {
  if (event.type === 'image.changed') return page.images.some((image) => image.id === event.id) ? 'reload' : null;
  if (event.type !== 'image.progress' && event.type !== 'image.phase') return null;
  if (!page.images.some((image) => image.id === event.id)) return event.type === 'image.phase' ? 'reload' : null;
  const images = page.images.map((image) => {
    if (image.id !== event.id) return image;
    return event.type === 'image.progress'
      ? { ...image, progress: event.progress }
      : { ...image, phase: event.phase, error: event.error };
  });
  return { ...page, images };
}

/** A download's progress applied to the images a node can boot from; anything else fetches them again. */
export function applyToAvailable<
  Page extends { images: { imageId: string | null; progress: ImageLike['progress'] }[] },
>(page: Page, event: LiveEvent): Page | 'reload' | null {
  if (event.type !== 'image.progress') return 'reload';
  if (!page.images.some((image) => image.imageId === event.id)) return null;
  return {
    ...page,
    images: page.images.map((image) => (image.imageId === event.id ? { ...image, progress: event.progress } : image)),
  };
}

/** A VM's new state applied in place; a VM not listed is a new one: fetch the list again. */
export function applyToVms<Page extends { vms: { id: string; state: string }[] }>(
  page: Page,
  event: LiveEvent,
): Page | 'reload' | null {
  if (event.type !== 'vm.state') return null;
  if (!page.vms.some((vm) => vm.id === event.id)) return 'reload';
  return { ...page, vms: page.vms.map((vm) => (vm.id === event.id ? { ...vm, state: event.state } : vm)) };
}
