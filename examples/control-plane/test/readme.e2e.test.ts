/**
 * The README cannot drift from what Quantix does. Every relative link in the READMEs leads to a
 * file; every `npx quantix …` line names commands and flags the built CLI has; and the blocks
 * marked `<!-- readme-test … -->` are run, line by line, as a reader would run them, against
 * `quantix up` (its in-process start, on embedded PGlite and qemu:///system) in a fresh directory,
 * with the catalog's `ubuntu-24.04` pointed at a local mirror serving a tiny qcow2 (no internet).
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { BUILTIN_CATALOG_ENTRIES } from '@quantix/images-cloud';
import { type ImageServer, makeQcow2, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { quoteArgv } from '@quantix/node-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_POOL_ID, startAllInOne } from '../src/cli/up.js';
import { ensureSystemServices, waitFor } from './harness.js';
import { QUANTIX, QUANTIX_NODE } from './processes.js';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '../../..');
const README = join(repoRoot, 'README.md');

/** The READMEs a reader meets: the main one and every package's and example's. */
function readmes(): string[] {
  const found = [README];
  for (const parent of ['packages', 'examples']) {
    for (const name of readdirSync(join(repoRoot, parent))) {
      const file = join(repoRoot, parent, name, 'README.md');
      if (existsSync(file)) found.push(file);
    }
  }
  return found;
}

/**
 * The words of one shell line (quotes and backslashes as sh reads them; `#` starts a comment). A
 * `<placeholder>` the reader fills in is one word, spaces and all.
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let text = '';
      for (i++; i < line.length && line[i] !== '"'; i++) text += line[i] === '\\' ? line[++i] : line[i];
      word = (word ?? '') + text;
    } else if (c === '\\') {
      word = (word ?? '') + (line[++i] ?? '');
    } else if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else if (c === '<' && word === null && line.includes('>', i)) {
      const end = line.indexOf('>', i);
      word = line.slice(i, end + 1);
      i = end;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

interface ShellLine {
  file: string;
  /** 1-based line in the file where the command starts. */
  line: number;
  words: string[];
  runnable: boolean;
}

/** The commands of every ```sh block, continuation lines joined; `runnable` for marked blocks. */
function shellLines(file: string): ShellLine[] {
  const text = readFileSync(file, 'utf8');
  const lines: ShellLine[] = [];
  for (const block of text.matchAll(/(<!-- readme-test[^>]*-->\s*)?```sh\n([\s\S]*?)```/g)) {
    const firstLine = text.slice(0, (block.index ?? 0) + (block[1]?.length ?? 0)).split('\n').length + 1;
    let pending = '';
    let start = 0;
    (block[2] as string).split('\n').forEach((raw, index) => {
      if (!pending) start = firstLine + index;
      if (raw.endsWith('\\')) {
        pending += `${raw.slice(0, -1)} `;
        return;
      }
      const words = shellWords(pending + raw);
      pending = '';
      if (words.length > 0) lines.push({ file, line: start, words, runnable: block[1] !== undefined });
    });
  }
  return lines;
}

const where = (l: ShellLine) => `${l.file.slice(repoRoot.length + 1)}:${l.line}: ${l.words.join(' ')}`;

/** The program and its arguments when a line runs `npx quantix` or `npx quantix-node`; else null. */
function quantixCommand(words: string[]): { bin: string; args: string[] } | null {
  const at = words.findIndex((w, i) => w === 'npx' && /^quantix(-node)?$/.test(words[i + 1] ?? ''));
  if (at < 0) return null;
  const end = words.indexOf('&&', at);
  const args = words.slice(at + 2, end < 0 ? undefined : end);
  return { bin: words[at + 1] === 'quantix' ? QUANTIX : QUANTIX_NODE, args };
}

/** Runs the built CLI; resolves with its exit code and output, whatever the code. */
async function cli(
  bin: string,
  args: string[],
  options: { cwd?: string; terminalInput?: string } = {},
): Promise<{ code: number | null; output: string }> {
  // A terminal, when a command asks something: `script` gives it a pty fed from our stdin.
  const argv = options.terminalInput
    ? ['script', '-qec', quoteArgv([process.execPath, bin, ...args]), '/dev/null']
    : [process.execPath, bin, ...args];
  // As a reader's shell: the CLI finds `quantix up` through ./.quantix, not the environment.
  const { QUANTIX_URL: _url, QUANTIX_TOKEN: _token, ...env } = process.env;
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: options.cwd ?? repoRoot,
    env: { ...env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => {
    output += String(d);
  });
  child.stderr.on('data', (d) => {
    output += String(d);
  });
  child.stdin.end(options.terminalInput ?? '');
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('README', () => {
  it('links only to files that exist', () => {
    const broken: string[] = [];
    for (const file of readmes()) {
      const text = readFileSync(file, 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (!target || /^(https?:|mailto:|#)/.test(target)) continue;
        const path = join(dirname(file), decodeURIComponent(target.split('#')[0] as string));
        if (!existsSync(path)) broken.push(`${file.slice(repoRoot.length + 1)} → ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('names only commands and flags the built CLI has', { timeout: 120_000 }, async () => {
    const lines = readmes()
      .flatMap(shellLines)
      .filter((l) => quantixCommand(l.words));
    expect(lines.length).toBeGreaterThan(10);
    const wrong: string[] = [];
    for (const line of lines) {
      const { bin, args } = quantixCommand(line.words) as { bin: string; args: string[] };
      // `quantix pools create isos --help` prints the help of `pools create`; a misspelled command fails.
      const path = args.slice(0, args.findIndex((a) => a.startsWith('-') || a.startsWith('[')) >>> 0);
      const help = await cli(bin, [...path, '--help']);
      if (help.code !== 0) {
        wrong.push(`${where(line)} — ${help.output.trim()}`);
        continue;
      }
      for (const flag of args.map((a) => a.replace(/^\[/, '').split('=')[0] as string)) {
        if (flag.startsWith('--') && !new RegExp(`(?<![\\w-])${flag}(?![\\w-])`).test(help.output))
          wrong.push(`${where(line)} — no ${flag}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('downloads only catalog ids the built-in catalog has', () => {
    // The marked block's run points `ubuntu-24.04` at a local mirror, which would hide a wrong id.
    const known = new Set(BUILTIN_CATALOG_ENTRIES.map((e) => e.id));
    const named = readmes()
      .flatMap(shellLines)
      .flatMap((l) => {
        const args = quantixCommand(l.words)?.args ?? [];
        return args[0] === 'images' && args[1] === 'download' && args[2] ? [{ line: l, id: args[2] }] : [];
      });
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter(({ id }) => !known.has(id)).map(({ line }) => where(line))).toEqual([]);
  });
});

describe('README, its marked blocks run against quantix up', { timeout: 300_000 }, () => {
  let work: string;
  let mirror: ImageServer;
  let system: Awaited<ReturnType<typeof startAllInOne>>;
  let publicKey: string;

  beforeAll(async () => {
    await ensureSystemServices();
    work = await mkdtemp(join(tmpdir(), 'quantix-readme-'));
    mirror = await startImageServer();
    const image = await makeQcow2(work, 'noble.qcow2', 2);
    mirror.setFile('/noble/noble.qcow2', image);
    mirror.setFile('/noble/SHA256SUMS', sha256Sums({ 'noble.qcow2': image }));
    // The README reader's `quantix up`, started in-process so its catalog can point at the mirror.
    system = await startAllInOne({
      dataDir: join(work, '.quantix'),
      host: '127.0.0.1',
      port: 0,
      libvirtUri: 'qemu:///system',
      entries: [
        {
          id: 'ubuntu-24.04',
          name: 'Ubuntu 24.04 LTS (Noble), from the test mirror',
          kind: 'cloud',
          format: 'qcow2',
          os: {
            family: 'linux',
            distribution: 'ubuntu',
            version: '24.04',
            arch: 'x86_64',
            defaultUser: 'ubuntu',
            cloudInit: true,
          },
          requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' },
          sourceUrl: `${mirror.url}/noble/noble.qcow2`,
          checksumUrl: `${mirror.url}/noble/SHA256SUMS`,
          checksumAlgorithm: 'sha256',
        },
      ],
      allowSourceAddresses: ['127.0.0.1'],
      log: () => {},
    });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'reader@example', '-f', join(work, 'id')]);
    publicKey = readFileSync(join(work, 'id.pub'), 'utf8').trim();
  });

  afterAll(async () => {
    await run('virsh', ['-c', 'qemu:///system', 'destroy', 'web-01']).catch(() => undefined);
    await run('virsh', ['-c', 'qemu:///system', 'undefine', 'web-01', '--nvram']).catch(() => undefined);
    await system?.close();
    await mirror?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const api = async (path: string) => {
    const response = await fetch(`${system.url}/api/v1${path}`, {
      headers: { authorization: `Bearer ${system.apiToken}` },
    });
    return { status: response.status, body: await response.json().catch(() => null) };
  };

  it('every line succeeds, and the VM it makes goes with its own disks but not its image', async () => {
    const marked = shellLines(README).filter((l) => l.runnable);
    expect(marked.map((l) => l.words.slice(0, 4).join(' '))).toContain('npx quantix vms delete');
    const poolDir = join(work, '.quantix', 'pools', LOCAL_POOL_ID);
    await waitFor(
      async () => (await api(`/pools/${LOCAL_POOL_ID}`)).body?.nodeStates?.[0]?.status === 'active',
      'the local pool to be active',
    );
    for (const line of marked) {
      const command = quantixCommand(line.words);
      expect(command, `${where(line)} runs npx quantix`).not.toBeNull();
      const { bin, args } = command as { bin: string; args: string[] };
      const image = (await api('/images?catalogId=ubuntu-24.04')).body?.images?.[0];
      const values: Record<string, string | undefined> = { '<image id>': image?.id, '<your public key>': publicKey };
      const filled = args.map((a) => a.replace(/<[^>]+>/g, (p) => values[p] ?? `(no value for ${p})`));
      expect(filled.join(' '), where(line)).not.toContain('(no value for');
      const asks = filled[0] === 'vms' && filled[1] === 'delete' && !filled.includes('--yes');
      if (asks) {
        // Without a terminal and without --yes it refuses (usage, exit 2) and the VM stays.
        const refused = await cli(bin, filled, { cwd: work });
        expect(refused.code, refused.output).toBe(2);
        expect(refused.output).toContain('--yes');
        expect((await api('/vms/web-01')).status).toBe(200);
      }
      const result = await cli(bin, filled, { cwd: work, ...(asks ? { terminalInput: 'y\n' } : {}) });
      expect(result.code, `${where(line)}\n${result.output}`).toBe(0);

      if (filled[1] === 'create') {
        // Sizes left out come from osinfo-db's resources for the OS (Ubuntu 24.04 is newer than
        // the installed database: the figures of Ubuntu 22.10, its newest release before), and
        // the domain carries the OS id in libosinfo's metadata, as virt-install writes it.
        const defaults = (await api(`/images/${image.id}/vm-defaults`)).body;
        expect(defaults).toMatchObject({
          diskGiB: 25,
          os: { osId: 'http://ubuntu.com/ubuntu/24.04', exact: false, basedOn: 'ubuntu22.10' },
        });
        expect(defaults.os.recommended).toEqual({ cpus: null, memoryMiB: 4096, diskGiB: 25 });
        const vm = (await api('/vms/web-01')).body;
        expect({ cpu: vm.cpu, memoryMiB: vm.memoryMiB, diskGiB: vm.disks[0].sizeGiB }).toEqual({
          cpu: 1,
          memoryMiB: 512,
          diskGiB: 25,
        });
        const { stdout } = await run('virsh', ['-c', 'qemu:///system', 'dumpxml', 'web-01']);
        expect(stdout).toMatch(
          /<libosinfo:libosinfo xmlns:libosinfo="http:\/\/libosinfo.org\/xmlns\/libvirt\/domain\/1.0">\s*<libosinfo:os id="http:\/\/ubuntu.com\/ubuntu\/24.04"\/>/,
        );
        // Its one NIC is on libvirt's `default` NAT network, where the key given lets you in.
        expect(vm.nics).toMatchObject([{ attachment: 'network', source: 'default' }]);
        expect(stdout).toContain("<source network='default'");
      }
      if (filled[1] === 'show') {
        expect(result.output).toMatch(/VM web-01 \(\S+\) is running/);
        expect(result.output).toContain(join(poolDir, 'vms/web-01/disk.qcow2'));
        // Each table says what it lists: the disk, then the NIC on `default`.
        expect(result.output).toMatch(/^DISK\s+SIZE\s+FORMAT\s+BUS\s+IMAGE ID$/m);
        expect(result.output).toMatch(/^NIC NETWORK\s+MODEL\s+MAC\s+ADDRESSES\ndefault\s+virtio\s+52:54:00:/m);
      }
      if (filled[1] === 'delete') expect(result.output).toMatch(/Delete VM web-01 .*disk\.qcow2.*\[y\/N\]/s);
    }
    // Downloading it again starts nothing: the CLI says the pool has it.
    const again = await cli(QUANTIX, ['images', 'download', 'ubuntu-24.04', '--no-wait'], { cwd: work });
    const downloaded = (await api('/images?catalogId=ubuntu-24.04')).body.images;
    expect(downloaded).toHaveLength(1);
    expect(again.output).toBe(`ubuntu-24.04 is already in the pool, ready: image ${downloaded[0].id}\n`);
    // The VM, its overlay and its seed are gone; the image it was made from is not.
    expect((await api('/vms/web-01')).status).toBe(404);
    await expect(run('virsh', ['-c', 'qemu:///system', 'domstate', 'web-01'])).rejects.toThrow();
    expect(existsSync(join(poolDir, 'vms/web-01'))).toBe(false);
    const image = (await api('/images?catalogId=ubuntu-24.04')).body.images[0];
    expect(image.phase).toBe('ready');
    expect(existsSync(join(poolDir, image.location.relPath))).toBe(true);
  });
});
