import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, defaultLogFormat, formatLogLine, redactSecrets } from './logging.js';

const secret = 'tK9_secret-Value.42';

/** Every line a logger writes, as text. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, stream };
}

describe('createLogger', () => {
  it('keeps tokens out of messages, URLs, headers, fields and errors', () => {
    const { lines, stream } = capture();
    const child = createLogger({ level: 'info' }, stream);
    child.info(`fetching http://cp:8080/api/v1/uploads/abc?token=${secret}`);
    child.info(
      { url: `http://cp/api/v1/uploads/x?token=${secret}&a=1`, sourceUrl: `http://cp/u?token=${secret}` },
      'x',
    );
    child.info({ headers: { authorization: `Bearer ${secret}` }, token: secret, nested: { token: secret } }, 'y');
    child.warn({ err: new Error(`GET http://cp/u?token=${secret} failed`) }, 'z');
    child.info(
      {
        req: {
          method: 'GET',
          url: `/api/v1/uploads/x?token=${secret}`,
          headers: { authorization: `Bearer ${secret}` },
        },
      },
      'incoming request',
    );
    expect(lines.length).toBe(5);
    for (const line of lines) expect(line).not.toContain(secret);
    expect(lines.join('')).toContain('[redacted]');
  });

  it('logs a reason given as err, a string, as its message, secrets out', () => {
    const { lines, stream } = capture();
    const logger = createLogger({ level: 'info' }, stream);
    logger.warn({ poolId: 'p3', err: 'Pool directory /srv/x does not exist' }, 'pool could not be activated');
    logger.warn({ err: `GET http://cp/u?token=${secret} failed` }, 'download failed');
    const [first, second] = lines.map((line) => JSON.parse(line));
    expect(first).toMatchObject({ poolId: 'p3', err: { message: 'Pool directory /srv/x does not exist' } });
    expect(second.err).toEqual({ message: 'GET http://cp/u?token=[redacted] failed' });
    // And a person reading a terminal sees the reason, not a character per field.
    expect(formatLogLine(lines[0] as string)).toContain('Pool directory /srv/x does not exist');
  });

  it('leaves text without secrets as it is', () => {
    expect(redactSecrets('pool local at /srv/x?y=1')).toBe('pool local at /srv/x?y=1');
    expect(redactSecrets('Authorization: Bearer abc.def')).toBe('Authorization: Bearer [redacted]');
  });

  it('takes a copy ticket out of a content URL', () => {
    expect(redactSecrets('Download from http://cp:8080/api/v1/images/i1/content?ticket=abc_DEF-1 ended')).toBe(
      'Download from http://cp:8080/api/v1/images/i1/content?ticket=[redacted] ended',
    );
  });

  it('writes compact lines a person reads on a terminal, secrets still out', () => {
    const { lines, stream } = capture();
    const logger = createLogger({ name: 'quantix', level: 'info' }, stream);
    logger.info({ poolId: 'local', path: '/srv/my isos', token: secret }, 'pool ready');
    const error = Object.assign(new Error(`GET http://cp/u?token=${secret} failed`), { code: 'DOWNLOAD_FAILED' });
    logger.error({ err: error }, 'download failed');
    const [ready, failed] = lines.map(formatLogLine);
    expect(ready).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}quantix: pool ready poolId=local path="\/srv\/my isos" token=\[redacted\]\n$/,
    );
    expect(failed).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} ERROR quantix: download failed\n {4}DOWNLOAD_FAILED: Error: GET http:\/\/cp\/u\?token=\[redacted\] failed\n {4,}at /,
    );
    expect(failed).not.toContain(secret);
    expect(formatLogLine('not json')).toBe('not json\n');
  });

  it('is pretty on a terminal and JSON anywhere else', () => {
    expect(defaultLogFormat({ isTTY: true })).toBe('pretty');
    expect(defaultLogFormat({ isTTY: false })).toBe('json');
    expect(defaultLogFormat({})).toBe('json');
  });
});
