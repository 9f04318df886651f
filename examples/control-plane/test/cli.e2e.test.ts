/**
 * `quantix up`, `quantix serve` and `quantix-node` as processes, for what a local user of the
 * machine could do to them: read or change the data directory, start a second copy on it, read
 * tokens from `ps` or the logs — and for a start that cannot succeed (port taken, a bad replica
 * flag), which must end at once with a reason rather than keep running.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeQcow2, sha256, startImageServer } from '@quantix/images-cloud/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  exitOf,
  freePort,
  type Proc,
  QUANTIX,
  QUANTIX_NODE,
  startProcess,
  stopProcess,
  waitForOutput,
} from './processes.js';
import { until } from './ui/helpers.js';

/** Files and directories under `dir` that anyone but their owner may read, write or enter. */
function openToOthers(dir: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    const info = statSync(path);
    if (info.mode & 0o077) found.push(`${path} ${(info.mode & 0o777).toString(8)}`);
    if (info.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(dir);
  return found;
}

describe('quantix up, serve and quantix-node as processes', { timeout: 180_000 }, () => {
  let work: string;
  const running: Proc[] = [];
  const up = (dataDir: string, ...extra: string[]) => {
    const proc = startProcess(
      [QUANTIX, 'up', '--data-dir', dataDir, '--port', '0', '--libvirt', 'none', ...extra],
      {},
      work,
    );
    running.push(proc);
    return proc;
  };
  /**
   * `up` in a directory of its own (its data in <dir>/.quantix), and the CLI run in that directory
   * as a user runs it: with the credentials `up` keeps there.
   */
  const upInOwnDirectory = (name: string, ...extra: string[]) => {
    const dir = join(work, name);
    execFileSync('mkdir', ['-m', '700', '-p', dir]);
    const proc = startProcess(
      [QUANTIX, 'up', '--data-dir', join(dir, '.quantix'), '--port', '0', '--libvirt', 'none', ...extra],
      {},
      dir,
    );
    running.push(proc);
    const cli = async (...args: string[]) => {
      const run = startProcess([QUANTIX, ...args], {}, dir);
      return { code: await exitOf(run, 120_000), output: run.output.join('') };
    };
    return { dir, proc, cli };
  };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'quantix-cli-'));
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((proc) => stopProcess(proc)));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('keeps its data to its user, one process at a time, and shows the token only when it makes it', async () => {
    const dataDir = join(work, 'data');
    const first = up(dataDir);
    const [, token] = await waitForOutput(first, /Token:\s+(\S+)/);
    await waitForOutput(first, /press Ctrl-C/);
    expect(openToOthers(dataDir)).toEqual([]);
    expect(statSync(join(dataDir, 'credentials.json')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dataDir, 'quantix.lock'), 'utf8').trim()).toBe(String(first.child.pid));

    // A second copy on the same directory is refused at once, naming the first.
    const second = up(dataDir);
    expect(await exitOf(second, 30_000)).not.toBe(0);
    expect(second.output.join('')).toMatch(new RegExp(`DATA_DIR_LOCKED.*process ${first.child.pid}`));

    await stopProcess(first);
    expect(first.child.exitCode).toBe(0);
    expect(existsSync(join(dataDir, 'quantix.lock'))).toBe(false);
    expect(openToOthers(dataDir)).toEqual([]);

    // Restarted: the same token, kept where it was, and not printed again.
    const again = up(dataDir);
    await waitForOutput(again, /press Ctrl-C/);
    const printed = again.output.join('');
    expect(printed).not.toContain(token as string);
    expect(printed).toContain(join(dataDir, 'credentials.json'));
    expect(JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')).token).toBe(token);
  });

  it('takes over the lock of a process that is gone', async () => {
    const dataDir = join(work, 'stale');
    const gone = startProcess(['-e', 'process.exit(0)'], {});
    await exitOf(gone, 10_000);
    execFileSync('mkdir', ['-m', '700', '-p', dataDir]);
    writeFileSync(join(dataDir, 'quantix.lock'), `${gone.child.pid}\n`);
    const proc = up(dataDir);
    await waitForOutput(proc, /press Ctrl-C/);
  });

  it('refuses a data directory other users can write to', async () => {
    const dataDir = join(work, 'open');
    execFileSync('mkdir', ['-p', dataDir]);
    chmodSync(dataDir, 0o777);
    const proc = up(dataDir);
    expect(await exitOf(proc, 30_000)).not.toBe(0);
    expect(proc.output.join('')).toMatch(/DATA_DIR_INSECURE.*chmod 700/s);
  });

  it('exits at once, non-zero, when its port is taken', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as { port: number };
    try {
      const dataDir = join(work, 'port');
      const proc = startProcess(
        [QUANTIX, 'up', '--data-dir', dataDir, '--port', String(port), '--libvirt', 'none'],
        {},
        work,
      );
      running.push(proc);
      expect(await exitOf(proc, 30_000)).toBe(1);
      expect(proc.output.join('')).toMatch(/EADDRINUSE/);
      // Nothing is left holding the directory.
      expect(existsSync(join(dataDir, 'quantix.lock'))).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('reads tokens from files and the environment, and warns when one is on the command line', async () => {
    const dataDir = join(work, 'serve');
    const tokenFile = join(work, 'api-token');
    writeFileSync(tokenFile, 'serve-token-from-a-file-0123456789\n', { mode: 0o600 });
    const serve = startProcess(
      [QUANTIX, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--api-token-file', tokenFile],
      { QUANTIX_LOG_LEVEL: 'info' },
      work,
    );
    running.push(serve);
    const [, url] = await waitForOutput(serve, /"url":"(http:\/\/[^"]+)"/);
    expect(serve.output.join('')).not.toContain('serve-token-from-a-file');
    const pools = await fetch(`${url}/api/v1/pools`, {
      headers: { authorization: 'Bearer serve-token-from-a-file-0123456789' },
    });
    expect(pools.status).toBe(200);
    // A staged-upload URL carries its one-time token: the request log line must not.
    const staged = await fetch(`${url}/api/v1/uploads/00000000-0000-4000-8000-000000000000?token=one-time-secret-42`);
    expect(staged.status).toBe(404);
    await waitForOutput(serve, /"url":"\/api\/v1\/uploads\/[^"]*token=\[redacted\]/);
    expect(serve.output.join('')).not.toContain('one-time-secret-42');

    // quantix-node with its token in argv: it says so (and never logs the token itself).
    const node = startProcess(
      [QUANTIX_NODE, '--url', url as string, '--node-id', 'nope', '--token', 'argv-token-123456', '--libvirt', 'none'],
      {
        QUANTIX_LOG_LEVEL: 'info',
      },
    );
    running.push(node);
    await waitForOutput(node, /on the command line.*--token-file/);
    await waitForOutput(node, /refused this node token/);
    expect(node.output.join('')).not.toContain('argv-token-123456');
  });

  it('serves as the replica named by --replica-id, holds its node under that name, and keeps the name when restarted with QUANTIX_REPLICA_ID', async () => {
    const dataDir = join(work, 'replica');
    const port = await freePort();
    const serve = (flags: string[], env: Record<string, string> = {}) => {
      const proc = startProcess(
        [QUANTIX, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, ...flags],
        env,
        work,
      );
      running.push(proc);
      return proc;
    };
    const replicaOf = async (url: string) =>
      ((await (await fetch(`${url}/api/v1/healthz`)).json()) as { replica: { id: string; nodes: number } }).replica;

    const first = serve([
      '--replica-id',
      'cp-east-1',
      '--replica-url',
      `http://127.0.0.1:${port}`,
      '--lease-seconds',
      '9',
    ]);
    const [, url] = await waitForOutput(first, /"url":"(http:\/\/[^"]+)"/);
    expect(await replicaOf(url as string)).toMatchObject({ id: 'cp-east-1', nodes: 0 });
    // The token is kept before `listening` is printed, so it can be read the moment that line is seen.
    expect(first.output.join('')).toMatch(
      /A new API token was made and kept in [^\n]+\n(?:.*\n)*\{"event":"listening"/,
    );
    const token = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')).token as string;
    const replicas = await fetch(`${url}/api/v1/replicas`, { headers: { authorization: `Bearer ${token}` } });
    expect(await replicas.json()).toMatchObject({
      self: 'cp-east-1',
      replicas: [{ id: 'cp-east-1', url: `http://127.0.0.1:${port}` }],
    });

    // A node daemon connects: this replica holds it, and `quantix nodes list` says which replica that is.
    const tokenFile = join(work, 'replica-api-token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const added = startProcess(
      [QUANTIX, '--token-file', tokenFile, '--json', 'nodes', 'add', 'hv-east', '--id', 'hv-east'],
      { QUANTIX_URL: url as string },
    );
    expect(await exitOf(added, 60_000)).toBe(0);
    const nodeTokenFile = join(work, 'hv-east-token');
    writeFileSync(nodeTokenFile, JSON.parse(added.output.join('')).token, { mode: 0o600 });
    const node = startProcess(
      [
        QUANTIX_NODE,
        '--url',
        url as string,
        '--node-id',
        'hv-east',
        '--token-file',
        nodeTokenFile,
        '--libvirt',
        'none',
      ],
      {},
    );
    running.push(node);
    await until(
      () => replicaOf(url as string),
      (replica) => replica.nodes === 1,
      'hv-east held by cp-east-1',
    );
    const listed = startProcess([QUANTIX, '--token-file', tokenFile, 'nodes', 'list'], { QUANTIX_URL: url as string });
    expect(await exitOf(listed, 60_000)).toBe(0);
    expect(listed.output.join('')).toMatch(/^hv-east\s+hv-east\s+connected\s+(just now|\d+ s ago)\s+cp-east-1\s/m);

    // Given a new token, the node is let go; the token written to its file, it is back without a
    // restart, and at once: not after the 30 s it waits between tries with a refused token.
    const rotated = startProcess([QUANTIX, '--token-file', tokenFile, '--json', 'nodes', 'token', 'hv-east'], {
      QUANTIX_URL: url as string,
    });
    expect(await exitOf(rotated, 60_000)).toBe(0);
    await until(
      () => replicaOf(url as string),
      (replica) => replica.nodes === 0,
      'hv-east let go with its old token',
    );
    await waitForOutput(node, /put it in \S+, which is read again when it changes/);
    // As `install -m 600` does: a new file in its place.
    writeFileSync(`${nodeTokenFile}.new`, JSON.parse(rotated.output.join('')).token, { mode: 0o600 });
    renameSync(`${nodeTokenFile}.new`, nodeTokenFile);
    await until(
      () => replicaOf(url as string),
      (replica) => replica.nodes === 1,
      'hv-east back with its new token',
      15_000,
    );
    await stopProcess(node);

    await stopProcess(first);
    expect(first.child.exitCode).toBe(0);

    const again = serve([], { QUANTIX_REPLICA_ID: 'cp-east-1' });
    await waitForOutput(again, /"event":"listening"/);
    expect(await replicaOf(url as string)).toMatchObject({ id: 'cp-east-1' });
  });

  it('refuses a bad replica id, URL, lease, rescan period or stop wait at once, non-zero, naming the flag or variable and the rule', async () => {
    let refusals = 0;
    const refused = async (flags: string[], env: Record<string, string>, message: RegExp) => {
      const dataDir = join(work, `refused-${refusals++}`);
      const proc = startProcess(
        [QUANTIX, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, ...flags],
        env,
        work,
      );
      running.push(proc);
      expect(await exitOf(proc, 30_000)).toBe(1);
      expect(proc.output.join('')).toMatch(message);
      // Refused before anything was opened: no data directory, no lock.
      expect(existsSync(dataDir)).toBe(false);
    };
    await refused(
      ['--replica-id', 'east 1/a'],
      {},
      /error INVALID_INPUT: --replica-id "east 1\/a" is not valid: a replica id is 1 to 64 letters, digits, "\.", "_" and "-"/,
    );
    await refused(['--replica-id', 'x'.repeat(65)], {}, /--replica-id "x{65}" is not valid/);
    await refused([], { QUANTIX_REPLICA_ID: 'ünicode' }, /QUANTIX_REPLICA_ID "ünicode" is not valid/);
    await refused(['--replica-url', 'cp-east:8080'], {}, /--replica-url "cp-east:8080" is not valid: give the http/);
    await refused(
      ['--lease-seconds', '2'],
      {},
      /--lease-seconds "2" is not valid: a whole number of seconds from 3 to 300/,
    );
    await refused(['--lease-seconds', '1.5'], {}, /--lease-seconds "1\.5" is not valid/);
    await refused(
      ['--rescan-seconds', 'soon'],
      {},
      /--rescan-seconds "soon" is not valid: a whole number of seconds from 0 to 86400/,
    );
    await refused([], { QUANTIX_RESCAN_SECONDS: '-5' }, /QUANTIX_RESCAN_SECONDS "-5" is not valid/);
    await refused(
      ['--vm-stop-seconds', '3601'],
      {},
      /--vm-stop-seconds "3601" is not valid: a whole number of seconds from 0 to 3600/,
    );
  });

  it('takes --allow-source for up’s local node: an import from a mirror at an allowed address, none from another', async () => {
    const { dir, proc, cli } = upInOwnDirectory('allow-source', '--allow-source', '127.0.0.1');
    const bytes = await makeQcow2(dir, 'disk.qcow2', 1);
    const allowed = await startImageServer();
    const other = await startImageServer({ host: '127.0.0.2' });
    try {
      allowed.setFile('/disk.qcow2', bytes);
      other.setFile('/disk.qcow2', bytes);
      await waitForOutput(proc, /press Ctrl-C/);
      const sha = sha256(bytes);
      const refused = await cli('images', 'import', `${other.url}/disk.qcow2`, '--pool', 'local', '--sha256', sha);
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(/SOURCE_NOT_ALLOWED.*127\.0\.0\.2 is in a denied range/);
      expect(other.requests).toEqual([]);
      // The node refused it before anything was recorded: no failed row holds the file's place.
      expect(JSON.parse((await cli('images', 'list', '--json')).output).images).toEqual([]);
      // No --pool: up has one pool, which it goes to.
      const imported = await cli('images', 'import', `${allowed.url}/disk.qcow2`, '--sha256', sha);
      expect(imported.output).toMatch(/ready/);
      expect(imported.code).toBe(0);
      const listed = await cli('images', 'list', '--json');
      expect(JSON.parse(listed.output).images).toMatchObject([
        { name: 'disk.qcow2', phase: 'ready', format: 'qcow2', location: { poolId: 'local' } },
      ]);
      // No --node: up has one node, whose view it shows.
      const available = await cli('--json', 'images', 'available', '--kind', 'cloud', '--search', 'disk.qcow2');
      expect(available.code, available.output).toBe(0);
      expect(JSON.parse(available.output)).toMatchObject({
        nodeId: 'local',
        images: [{ name: 'disk.qcow2', status: 'ready', selectable: true }],
      });

      // An import that kept its original: deleting the image takes the original too.
      allowed.setFile('/kept.qcow2', bytes);
      const kept = await cli(
        'images',
        'import',
        `${allowed.url}/kept.qcow2`,
        '--pool',
        'local',
        '--sha256',
        sha,
        '--keep-original',
      );
      expect(kept.code, kept.output).toBe(0);
      const images = join(dir, '.quantix', 'pools', 'local', 'images');
      expect(readdirSync(images).sort()).toEqual(['disk.qcow2', 'kept.qcow2', 'kept.qcow2.orig']);
      expect((await cli('images', 'delete', 'kept.qcow2', '--yes')).code).toBe(0);
      expect(readdirSync(images)).toEqual(['disk.qcow2']);
    } finally {
      await allowed.close();
      await other.close();
    }
  });

  it('an import outlives the control plane its CLI follows: the CLI says how to look it up, and up started again finishes it', async () => {
    const { dir, proc, cli } = upInOwnDirectory('outlives', '--allow-source', '127.0.0.1');
    const bytes = await makeQcow2(dir, 'slow.qcow2', 4);
    const mirror = await startImageServer();
    try {
      mirror.setFile('/slow.qcow2', bytes);
      mirror.behaviour.bytesPerSecond = 512 * 1024;
      await waitForOutput(proc, /press Ctrl-C/);
      const importing = startProcess(
        [QUANTIX, 'images', 'import', `${mirror.url}/slow.qcow2`, '--pool', 'local', '--sha256', sha256(bytes)],
        {},
        dir,
      );
      running.push(importing);
      await waitForOutput(importing, /slow\.qcow2 \[/);
      const [image] = JSON.parse((await cli('images', 'list', '--json')).output).images;
      expect(image).toMatchObject({ name: 'slow.qcow2', phase: 'downloading' });
      await stopProcess(proc);
      // It says it stops, and when it has (with no libvirt, nothing about VMs).
      expect(proc.output.join('')).toContain('\nstopping… (Ctrl-C again: at once)\n');
      expect(proc.output.join('')).toMatch(/\nQuantix stopped\n$/);
      expect(await exitOf(importing, 30_000)).toBe(1);
      expect(importing.output.join('')).toContain(
        `image ${image.id} stays recorded there, and its transfer goes on (or resumes once the control plane is back): \`quantix images show ${image.id}\` tells how it stands`,
      );
      // The same data directory again: the download is taken up and finished, verified.
      mirror.behaviour.bytesPerSecond = null;
      const again = startProcess(
        [
          QUANTIX,
          'up',
          '--data-dir',
          join(dir, '.quantix'),
          '--port',
          '0',
          '--libvirt',
          'none',
          '--allow-source',
          '127.0.0.1',
        ],
        {},
        dir,
      );
      running.push(again);
      await waitForOutput(again, /press Ctrl-C/);
      const ready = await until(
        async () => JSON.parse((await cli('images', 'show', image.id, '--json')).output),
        (shown) => shown.phase === 'ready',
        'the import to finish after the restart',
        60_000,
      );
      expect(ready).toMatchObject({ id: image.id, format: 'qcow2', location: { relPath: 'images/slow.qcow2' } });
      // From the partial file: the mirror was asked only for the rest.
      expect(mirror.requestsFor('/slow.qcow2').at(-1)).toMatchObject({
        status: 206,
        range: expect.stringMatching(/^bytes=[1-9]\d*-$/),
      });
    } finally {
      await mirror.close();
    }
  });

  it('cancels an import from the CLI: delete names cancel while it runs; cancelled, its image and what arrived delete', async () => {
    const { dir, proc, cli } = upInOwnDirectory('cancel', '--allow-source', '127.0.0.1');
    const bytes = await makeQcow2(dir, 'wrong.qcow2', 4);
    const mirror = await startImageServer();
    try {
      mirror.setFile('/wrong.qcow2', bytes);
      mirror.behaviour.bytesPerSecond = 256 * 1024;
      await waitForOutput(proc, /press Ctrl-C/);
      const started = await cli(
        'images',
        'import',
        `${mirror.url}/wrong.qcow2`,
        '--pool',
        'local',
        '--sha256',
        sha256(bytes),
        '--no-wait',
      );
      expect(started.code, started.output).toBe(0);
      const images = join(dir, '.quantix', 'pools', 'local', 'images');
      await until(
        async () => (existsSync(images) ? readdirSync(images) : []),
        (files) => files.some((file) => file.endsWith('.partial')),
        'bytes of the import to arrive',
      );
      const refused = await cli('images', 'delete', 'wrong.qcow2', '--yes');
      expect(refused.code).toBe(1);
      expect(refused.output).toContain('IN_USE');
      expect(refused.output).toContain('quantix images cancel');

      const cancelled = await cli('images', 'cancel', 'wrong.qcow2');
      expect(cancelled.code, cancelled.output).toBe(0);
      expect(cancelled.output).toMatch(/^cancelled wrong\.qcow2 \(.+\); `quantix images retry .+` resumes it/);
      const shown = JSON.parse((await cli('images', 'show', 'wrong.qcow2', '--json')).output);
      expect(shown).toMatchObject({ phase: 'error', error: { code: 'DOWNLOAD_CANCELLED', retryable: true } });
      // The transfer stopped part of the way: the mirror's count settles (what was in flight
      // counted), short of the file.
      const get = mirror.requestsFor('/wrong.qcow2').at(-1);
      let before = -1;
      await until(
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          const [was, now] = [before, get?.bytesSent ?? 0];
          before = now;
          return now === was;
        },
        (settled) => settled,
        'the mirror to stop sending',
      );
      expect(get).toMatchObject({ completed: false });
      expect(get?.bytesSent).toBeLessThan(bytes.length);
      // Cancelled once more (a retried command): the same answer, the row as it was.
      const again = await cli('images', 'cancel', 'wrong.qcow2');
      expect(again).toMatchObject({ code: 0 });
      expect(again.output).toMatch(/^cancelled wrong\.qcow2 /);
      expect(JSON.parse((await cli('images', 'show', 'wrong.qcow2', '--json')).output).version).toBe(shown.version);

      expect((await cli('images', 'delete', 'wrong.qcow2', '--yes')).code).toBe(0);
      expect(readdirSync(images)).toEqual([]);
    } finally {
      await mirror.close();
    }
  });

  it('says which files of a pool a rescan left out, and why: a file named .iso that is not one', async () => {
    const { dir, proc, cli } = upInOwnDirectory('rescan');
    await waitForOutput(proc, /press Ctrl-C/);
    const pool = join(dir, '.quantix', 'pools', 'local');
    execFileSync('mkdir', ['-p', join(pool, 'media')]);
    execFileSync('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'RESCUE',
      '-o',
      join(pool, 'media', 'rescue.iso'),
      '/etc/hostname',
    ]);
    writeFileSync(join(pool, 'media', 'half-copied.iso'), 'the first bytes of something');
    const rescan = await cli('images', 'rescan', '--pool', 'local');
    expect(rescan.code).toBe(0);
    expect(rescan.output).toMatch(/^local +\S+ +1 ISO\(s\), 1 file\(s\) left out$/m);
    expect(rescan.output).toMatch(
      /^left out: media\/half-copied\.iso \(local on \S+\): ISO_\w+ .*half-copied\.iso.*not an ISO/m,
    );
    const listed = await cli('--json', 'images', 'list');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.output).images.map((i: { name: string }) => i.name)).toEqual(['rescue.iso']);
  });

  it('finds a disk image copied into a pool by hand, and marks it missing once its file is gone', async () => {
    const { dir, proc, cli } = upInOwnDirectory('rescan-disks');
    await waitForOutput(proc, /press Ctrl-C/);
    const disk = join(dir, '.quantix', 'pools', 'local', 'images', 'appliance.qcow2');
    execFileSync('mkdir', ['-p', dirname(disk)]);
    await makeQcow2(dirname(disk), 'appliance.qcow2', 1);
    const rescan = await cli('images', 'rescan', '--pool', 'local');
    expect(rescan.code).toBe(0);
    expect(rescan.output).toMatch(/^local +\S+ +0 ISO\(s\)$/m);
    expect(rescan.output).toMatch(/^local +\S+ +1 disk image\(s\)$/m);
    const found = await cli('--json', 'images', 'show', 'appliance.qcow2');
    expect(found.code).toBe(0);
    expect(JSON.parse(found.output)).toMatchObject({
      kind: 'cloud',
      phase: 'ready',
      format: 'qcow2',
      location: { relPath: 'images/appliance.qcow2' },
      checksum: null,
    });

    const shown = await cli('images', 'show', 'appliance.qcow2');
    expect(shown.output).toMatch(/^size .+, no checksum yet \(`quantix images verify \S+` reads one\)$/m);
    // Its checksum, read on its node: recorded, then matched; bytes written over it by hand are
    // a mismatch (exit 1, the image in error, out of use) until they are accepted.
    const bytes = readFileSync(disk);
    const recorded = await cli('images', 'verify', 'appliance.qcow2');
    expect(recorded.code, recorded.output).toBe(0);
    expect(recorded.output).toContain(`appliance.qcow2: recorded sha256 ${sha256(bytes)}`);
    // The node by its name, as the CLI's tables name it.
    expect(recorded.output).toContain(`, read on ${hostname()})`);
    const matches = await cli('images', 'verify', 'appliance.qcow2');
    expect(matches.output).toContain(`appliance.qcow2: sha256 ${sha256(bytes)} matches the recorded checksum`);
    const other = Buffer.from(bytes);
    other[other.length - 1] = (other.at(-1) ?? 0) ^ 0xff;
    writeFileSync(disk, other);
    const mismatch = await cli('images', 'verify', 'appliance.qcow2');
    expect(mismatch.code).toBe(1);
    expect(mismatch.output).toContain(
      `appliance.qcow2: the file's sha256 ${sha256(other)} is not the ${sha256(bytes)} recorded`,
    );
    expect(mismatch.output).toMatch(/`quantix images verify \S+ --accept` records the file as it is; or delete/);
    const outOfUse = await cli('images', 'list');
    expect(outOfUse.output).toMatch(/^\S+ +appliance\.qcow2 +cloud +error /m);
    // Out of use: not exported (nor copied, nor booted) until it is verified again.
    const exported = await cli('images', 'export', 'appliance.qcow2', '-o', join(dir, 'out.qcow2'));
    expect(exported.code).toBe(1);
    expect(exported.output).toContain('IMAGE_NOT_READY');
    // Every image verified one after another says the same, and exits 1 ...
    const scrub = await cli('images', 'verify', '--all');
    expect(scrub.code, scrub.output).toBe(1);
    expect(scrub.output).toContain(
      `appliance.qcow2 (local): the file's sha256 ${sha256(other)} is not the ${sha256(bytes)} recorded\n`,
    );
    expect(scrub.output).toMatch(
      /^\d+ image\(s\): \d+ as recorded, 0 recorded now, 1 not the file recorded \(in error, out of use\), 0 not read$/m,
    );
    const accepted = await cli('images', 'verify', 'appliance.qcow2', '--accept');
    expect(accepted.code, accepted.output).toBe(0);
    expect(accepted.output).toContain(`appliance.qcow2: recorded sha256 ${sha256(other)} in place of ${sha256(bytes)}`);
    // ... until the file is taken as it is.
    const clean = await cli('images', 'verify', '--all', '--pool', 'local');
    expect(clean.code, clean.output).toBe(0);
    expect(clean.output).toContain(`appliance.qcow2 (local): sha256 ${sha256(other)} matches the recorded checksum\n`);
    expect((await cli('images', 'verify', 'appliance.qcow2', '--all')).code).toBe(2);

    rmSync(disk);
    expect((await cli('images', 'rescan')).code).toBe(0);
    const gone = await cli('images', 'list');
    expect(gone.code).toBe(0);
    expect(gone.output).toMatch(/^\S+ +appliance\.qcow2 +cloud +missing /m);
  });

  it('refuses a new token for its local node, or removing it: either left the node refused until a restart', async () => {
    const { proc, cli } = upInOwnDirectory('local-node');
    await waitForOutput(proc, /press Ctrl-C/);
    const token = await cli('nodes', 'token', 'local');
    expect(token.code, token.output).toBe(1);
    expect(token.output).toContain(
      'IN_USE: Node local runs inside this control plane (`quantix up`), which gives it a new token at every start: a new token would leave it refused until a restart',
    );
    expect(token.output).not.toContain('quantix-node --url');
    const removed = await cli('nodes', 'delete', 'local', '--yes');
    expect(removed.code, removed.output).toBe(1);
    expect(removed.output).toContain('IN_USE: Node local runs inside this control plane');
    // Still there, still connected on the token it was started with.
    const listed = await cli('--json', 'nodes', 'list');
    expect(JSON.parse(listed.output)).toMatchObject([{ id: 'local', connectionState: 'connected' }]);
  });

  it('says why no node can remove an image’s file, and forgets the image alone with --keep-file', async () => {
    const { dir, proc, cli } = upInOwnDirectory('keep-file');
    const [, token] = await waitForOutput(proc, /Token:\s+(\S+)/);
    const [, apiUrl] = await waitForOutput(proc, /API:\s+(\S+)/);
    await waitForOutput(proc, /press Ctrl-C/);
    const pools = join(dir, '.quantix', 'pools');
    expect(
      (
        await cli(
          'pools',
          'create',
          'spare',
          '--id',
          'spare',
          '--type',
          'local',
          '--path',
          join(pools, 'spare'),
          '--create',
          '--node',
          'local',
        )
      ).code,
    ).toBe(0);
    const poolState = async () => {
      const answer = await fetch(`${apiUrl}/pools/spare`, { headers: { authorization: `Bearer ${token}` } });
      return ((await answer.json()) as { nodeStates: { status: string }[] }).nodeStates[0]?.status;
    };
    await until(poolState, (status) => status === 'active', 'pool spare active', 30_000);
    // Two pools take images now: which one is the user's to say.
    const which = await cli('images', 'import', 'http://127.0.0.1:9/disk.qcow2', '--sha256', '0'.repeat(64));
    expect(which.code).toBe(2);
    expect(which.output).toMatch(/--pool is needed: 2 pools take images \(local, spare\)/);
    execFileSync('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'SPARE',
      '-o',
      join(pools, 'spare', 'spare.iso'),
      '/etc/hostname',
    ]);
    expect((await cli('images', 'rescan', '--pool', 'spare')).code).toBe(0);
    // The pool moved to a directory that is not there: the node has it, but not active.
    const moved = await fetch(`${apiUrl}/pools/spare`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ config: { path: join(pools, 'not-there') } }),
    });
    expect(moved.status).toBe(200);
    await until(poolState, (status) => status === 'unavailable', 'pool spare unavailable', 30_000);
    const refused = await cli('images', 'delete', 'spare.iso', '--yes');
    expect(refused.code).toBe(1);
    // up's node is named by its hostname, this machine's, as `nodes list` shows it.
    const node = hostname()
      .replace(/[^A-Za-z0-9.-]/g, '-')
      .replace(/\./g, '\\.');
    expect(refused.output).toMatch(
      new RegExp(
        `^error POOL_NOT_ACTIVE_ON_NODE: Pool spare is not active on any connected node \\(on ${node}: unavailable, .+\\); the file cannot be removed now \\(a delete with keepFile, \`quantix images delete --keep-file\`, forgets the image and leaves its file\\)$`,
        'm',
      ),
    );
    const forgotten = await cli('images', 'delete', 'spare.iso', '--yes', '--keep-file');
    expect(forgotten.code).toBe(0);
    expect(forgotten.output).toMatch(/^deleted image spare\.iso \(\S+\); its file spare:spare\.iso stays$/m);
    expect(existsSync(join(pools, 'spare', 'spare.iso'))).toBe(true);
    const listed = await cli('--json', 'images', 'list');
    expect(JSON.parse(listed.output).images).toEqual([]);
  });

  it('takes --virt-type for up’s local node, as quantix-node does, and refuses a type it does not know', async () => {
    const dataDir = join(work, 'virt-type');
    const wrong = up(dataDir, '--virt-type', 'xen');
    // A usage error (exit 2), naming the choices, before anything is opened.
    expect(await exitOf(wrong, 30_000)).toBe(2);
    expect(wrong.output.join('')).toMatch(
      /option '--virt-type <type>' argument 'xen' is invalid\. Allowed choices are kvm, qemu, auto/,
    );
    expect(existsSync(dataDir)).toBe(false);
    const fromEnv = startProcess(
      [QUANTIX, 'up', '--data-dir', dataDir, '--libvirt', 'none'],
      { QUANTIX_VIRT_TYPE: 'xen' },
      work,
    );
    running.push(fromEnv);
    expect(await exitOf(fromEnv, 30_000)).toBe(2);
    expect(fromEnv.output.join('')).toMatch(
      /'--virt-type <type>' value 'xen' from env 'QUANTIX_VIRT_TYPE' is invalid\. Allowed choices are kvm, qemu, auto/,
    );
  });

  it('imports an osinfo-db release archive that nodes on the host then identify with', async () => {
    const dataHome = join(work, 'xdg');
    const release = join(work, 'release');
    // The installed osinfo-db, packed the way upstream ships a release, under a newer VERSION.
    execFileSync('mkdir', ['-p', join(release, 'osinfo-db-20991231')]);
    execFileSync('cp', ['-r', '/usr/share/osinfo/os', join(release, 'osinfo-db-20991231/')]);
    writeFileSync(join(release, 'osinfo-db-20991231', 'VERSION'), '20991231\n');
    const archive = join(work, 'osinfo-db-20991231.tar.xz');
    execFileSync('tar', ['-cJf', archive, '-C', release, 'osinfo-db-20991231']);

    const proc = startProcess([QUANTIX, 'osinfo', 'import', archive], { XDG_DATA_HOME: dataHome });
    expect(await exitOf(proc, 120_000)).toBe(0);
    expect(proc.output.join('')).toMatch(/osinfo-db 20991231 \(\d+ media entries\) is in .*xdg\/quantix\/osinfo/);
    // What a node on this host loads by default is now the imported release.
    const loaded = startProcess(
      [
        '--input-type=module',
        '-e',
        "const m = await import('@quantix/images-iso'); const db = await m.loadOsinfoDatabase({ cacheDir: false }); console.log(m.defaultOsinfoDir(), db.dbVersion)",
      ],
      { XDG_DATA_HOME: dataHome, OSINFO_SYSTEM_DIR: '' },
      join(import.meta.dirname, '..'),
    );
    expect(await exitOf(loaded, 60_000)).toBe(0);
    expect(loaded.output.join('')).toContain(`${join(dataHome, 'quantix', 'osinfo')} 20991231`);
  });
});
