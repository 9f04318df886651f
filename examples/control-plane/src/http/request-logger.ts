import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

/**
 * Each request's logger (`request.log`), made the first time a line at an enabled level is
 * logged through it. Fastify makes a child logger for every request; with the redaction our
 * logger does, each costs about 2 KB, and most requests log nothing at the default levels. A
 * request waiting for a database answer (a node's token check) holds its logger through
 * young-generation collections: in a storm of 2,000 node connections, a pino child each was
 * memory copied, promoted and marked for nothing (bench/pool-sync: 13% of what was promoted).
 */
class RequestLogger implements FastifyBaseLogger {
  private made: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
  ) {}

  /** The child logger itself: what fastify's own factory would have made at once. */
  private get logger(): Logger {
    this.made ??= this.parent.child(this.bindings);
    return this.made;
  }

  get level(): string {
    return (this.made ?? this.parent).level;
  }

  set level(level: string) {
    this.logger.level = level;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  error(...args: unknown[]): void {
    this.write('error', args);
  }

  warn(...args: unknown[]): void {
    this.write('warn', args);
  }

  info(...args: unknown[]): void {
    this.write('info', args);
  }

  debug(...args: unknown[]): void {
    this.write('debug', args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options);
  }

  private write(level: Level, args: unknown[]): void {
    // The level asked of the logger in use: the parent's, until a level was set on this one.
    if (!(this.made ?? this.parent).isLevelEnabled(level)) return;
    const { logger } = this;
    (logger[level] as (...line: unknown[]) => void).apply(logger, args);
  }
}

/**
 * Fastify's `childLoggerFactory` for `request.log`: a RequestLogger. A route with a log level
 * of its own (`logLevel`) gets pino's child at once, as without this factory.
 */
export function requestLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  const parent = logger as Logger;
  if (options.level !== undefined || typeof parent.isLevelEnabled !== 'function') {
    return logger.child(bindings, options);
  }
  return new RequestLogger(parent, bindings);
}
