import { type DestinationStream, type Logger, type LoggerOptions, pino, stdSerializers } from 'pino';

const SECRET_QUERY = /([?&;](?:token|ticket|access_token|api_key|key|secret)=)[^&#\s"'<>]+/gi;
const BEARER = /(\bBearer\s+)[A-Za-z0-9._~+/=-]+/gi;
const REDACTED = '[redacted]';

/**
 * A text with its secrets replaced: `token=…` style query parameters (staged-upload URLs, copy
 * tickets) and `Bearer …` credentials. For log lines and error messages that may quote a URL or a header.
 */
export function redactSecrets(text: string): string {
  if (!text.includes('=') && !/bearer/i.test(text)) return text;
  return text.replace(SECRET_QUERY, `$1${REDACTED}`).replace(BEARER, `$1${REDACTED}`);
}

const isPlain = (value: object) => {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null || Array.isArray(value);
};

/** Strings in plain objects and arrays, redacted; other objects (requests, errors) are left to serializers. */
function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth > 4 || value === null || typeof value !== 'object' || !isPlain(value)) return value;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, depth + 1)]));
}

/**
 * The one way Quantix makes a logger: pino, with every token kept out of every line — header
 * and field values by path, URLs and messages by pattern, errors (whose messages may quote a
 * URL) through the error serializer.
 */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const errSerializer = stdSerializers.err;
  return pino(
    {
      ...options,
      redact: {
        paths: [
          'token',
          '*.token',
          'apiToken',
          '*.apiToken',
          'authorization',
          'headers.authorization',
          'req.headers.authorization',
          'request.headers.authorization',
        ],
        censor: REDACTED,
      },
      serializers: {
        ...options.serializers,
        // Callers log a reason as often as an Error: a string is its message (spread, it became
        // one field per character).
        err: (error: unknown) =>
          (error !== null && typeof error === 'object'
            ? redactDeep({ ...errSerializer(error as Error) })
            : { message: redactSecrets(String(error)) }) as ReturnType<typeof errSerializer>,
        req: (request: { method?: string; url?: string; ip?: string; socket?: { remotePort?: number } }) => ({
          method: request.method,
          url: typeof request.url === 'string' ? redactSecrets(request.url) : request.url,
          remoteAddress: request.ip,
          remotePort: request.socket?.remotePort,
        }),
      },
      formatters: {
        ...options.formatters,
        // Runs before the serializers: strings of plain fields (a sourceUrl, a reason) are redacted here.
        log: (object) =>
          redactDeep(options.formatters?.log ? options.formatters.log(object) : object) as Record<string, unknown>,
      },
      hooks: {
        // The message itself (and any string argument) may quote a URL too.
        logMethod(args, method) {
          return method.apply(
            this,
            args.map((arg) => (typeof arg === 'string' ? redactSecrets(arg) : arg)) as Parameters<typeof method>,
          );
        },
      },
    },
    destination as DestinationStream,
  );
}

export type LogFormat = 'json' | 'pretty';

/** `pretty` on a terminal, `json` otherwise (a file, a pipe, journald, a log shipper). */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stdout): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every pino line carries, or that the compact line shows in its own place. */
const SHOWN_APART = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'err']);

function fieldText(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as a person reads it: `12:04:05.123 WARN  quantix: message key=value …`,
 * an error's message and stack below it. Lines that are not JSON pass through unchanged.
 */
export function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : '';
  const level = LEVEL_NAMES[entry.level as number] ?? String(entry.level);
  const name = typeof entry.name === 'string' ? `${entry.name}: ` : '';
  const fields = Object.entries(entry)
    .filter(([key]) => !SHOWN_APART.has(key))
    .map(([key, value]) => `${key}=${fieldText(value)}`);
  let text = [time, level, `${name}${entry.msg ?? ''}`, ...fields].filter(Boolean).join(' ');
  const err = entry.err as { message?: string; stack?: string; code?: string } | undefined;
  if (err) {
    const detail = `${err.code ? `${err.code}: ` : ''}${err.stack ?? err.message ?? ''}`;
    text += detail
      .split('\n')
      .map((l) => `\n    ${l}`)
      .join('');
  }
  return `${text}\n`;
}

/** A destination for createLogger that writes formatLogLine's lines to `out` (stdout by default). */
export function prettyLogDestination(out: NodeJS.WritableStream = process.stdout): DestinationStream {
  return { write: (line: string) => void out.write(formatLogLine(line)) };
}

/** The destination for a `--log-format` choice: the compact lines, or pino's own JSON on stdout (undefined). */
export function logDestination(format: LogFormat): DestinationStream | undefined {
  return format === 'pretty' ? prettyLogDestination() : undefined;
}
