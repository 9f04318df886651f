/**
 * `@quantix/core/light`: what a client of the API (the `quantix` CLI) needs of core, without the
 * rest: no knex, pg, PGlite or zod is loaded, so a command starts in a fraction of the time. The
 * same functions as the main entry (in ESM one copy of each, in chunks both entries share).
 */

export { GOLDEN_LABELS } from './domain/golden-labels.js';
export { terminalSafe, terminalSafeJson } from './domain/unsafe-text.js';
export { ErrorCode, isQuantixError, isRetryableError, QuantixError, type QuantixErrorOptions } from './errors.js';
export { hashFile, sha256OfFile } from './util/hash-file.js';
export { writeFileAtomic } from './util/write-file-atomic.js';
