/**
 * Polls `probe` until it returns something truthy and returns that; after `timeoutMs` it throws,
 * naming `what` and the last value seen. Tests wait for the state they assert rather than
 * sleeping for a time that a busy machine overruns. `intervalMs` spaces probes that cost something
 * (an API call) so that waiting does not load the machine it waits on.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<Exclude<T, undefined | null | false | 0 | ''>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as Exclude<T, undefined | null | false | 0 | ''>;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(value)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
