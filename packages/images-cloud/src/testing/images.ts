/**
 * Real disk images for tests, made with qemu-img and qemu-io. When qemu-img is missing, the
 * project's scripts/ensure-packages.sh (found from the working directory up) installs
 * qemu-utils, so a fresh CI machine gets it; elsewhere the error says what to install.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

let toolsReady: Promise<void> | undefined;

function findEnsureScript(): string | null {
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const candidate = join(dir, 'scripts', 'ensure-packages.sh');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

async function installQemuUtils(): Promise<void> {
  try {
    await run('qemu-img', ['--version']);
    await run('qemu-io', ['--version']);
    return;
  } catch {
    // Missing: install below.
  }
  const script = findEnsureScript();
  if (!script)
    throw new Error('qemu-img and qemu-io are needed to make test images (Debian: apt-get install qemu-utils)');
  await run('bash', [script, 'qemu-utils'], { timeout: 900_000 });
}

/** qemu-img and qemu-io, installed (once per process) when the machine lacks them. */
export function ensureImageTools(): Promise<void> {
  toolsReady ??= installQemuUtils().catch((error: unknown) => {
    toolsReady = undefined;
    throw error;
  });
  return toolsReady;
}

const MiB = 1024 * 1024;
export const VIRTUAL_SIZE = 1024 * MiB;

/**
 * A real qcow2: `qemu-img create -f qcow2` of 1 GiB virtual size, then `dataMiB` MiB of random
 * data written into it with qemu-io at spread-out offsets (random, so that no two test images
 * look alike). Returns its bytes.
 */
export async function makeQcow2(dir: string, name: string, dataMiB: number): Promise<Buffer> {
  await ensureImageTools();
  const image = join(dir, name);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(VIRTUAL_SIZE)]);
  const step = Math.floor(VIRTUAL_SIZE / dataMiB / MiB) * MiB;
  const commands: string[] = [];
  const pieces: string[] = [];
  for (let i = 0; i < dataMiB; i++) {
    // `write -s FILE` fills the write from FILE: one random MiB per write.
    const piece = join(dir, `${name}.piece${i}`);
    await writeFile(piece, randomBytes(MiB));
    pieces.push(piece);
    commands.push('-c', `write -q -s ${piece} ${i * step} 1M`);
  }
  await run('qemu-io', ['-f', 'qcow2', ...commands, image]);
  await Promise.all(pieces.map((piece) => rm(piece, { force: true })));
  return readFile(image);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha512(data: Buffer | string): string {
  return createHash('sha512').update(data).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/** A SHA256SUMS file as Ubuntu publishes it: GNU format, binary-mode marker, other files around ours. */
export function sha256Sums(files: Record<string, Buffer>): string {
  const lines = [`${sha256('unrelated')} *unrelated-server-cloudimg-arm64.img`];
  for (const [name, data] of Object.entries(files)) lines.push(`${sha256(data)} *${name}`);
  lines.push(`${sha256('another')} *another.tar.gz`);
  return `${lines.join('\n')}\n`;
}
