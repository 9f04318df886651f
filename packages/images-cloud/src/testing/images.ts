/**
 * Real disk images for tests, made with qemu-img and qemu-io. Nothing here installs them: a
 * machine without them fails the test with the Debian package (qemu-utils) to install.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireTools } from '@quantix/core/testing';

const run = promisify(execFile);

/** Throws, naming the Debian package qemu-utils and how to install it, unless qemu-img and qemu-io are there. */
export function requireImageTools(): void {
  requireTools(
    { program: 'qemu-img', debianPackage: 'qemu-utils' },
    { program: 'qemu-io', debianPackage: 'qemu-utils' },
  );
}

const MiB = 1024 * 1024;
export const VIRTUAL_SIZE = 1024 * MiB;

/**
 * A real qcow2: `qemu-img create -f qcow2` of 1 GiB virtual size, then `dataMiB` MiB of random
 * data written into it with qemu-io at spread-out offsets (random, so that no two test images
 * look alike). Returns its bytes.
 */
export async function makeQcow2(dir: string, name: string, dataMiB: number): Promise<Buffer> {
  requireImageTools();
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

/** `qemu-img create -q -f <format> [-o <options>] <path> [<size>]`: an empty image of any format. */
export async function createImage(options: {
  path: string;
  format: string;
  size?: string;
  /** qemu-img's -o options, e.g. ['subformat=streamOptimized']. */
  options?: readonly string[];
}): Promise<void> {
  requireImageTools();
  const o = (options.options ?? []).flatMap((option) => ['-o', option]);
  await run('qemu-img', [
    'create',
    '-q',
    '-f',
    options.format,
    ...o,
    options.path,
    ...(options.size ? [options.size] : []),
  ]);
}

/**
 * A monolithicFlat VMDK descriptor at `path` whose one extent is `target` (say /etc/passwd):
 * what an import must refuse, since `qemu-img info` of it opens the target.
 */
export async function makeVmdkDescriptorNaming(path: string, target: string): Promise<void> {
  const flat = `${path}.made-flat.vmdk`;
  await createImage({ path: flat, format: 'vmdk', size: '1M', options: ['subformat=monolithicFlat'] });
  const descriptor = await readFile(flat, 'latin1');
  const extent = /"([^"]*-flat\.vmdk)"/.exec(descriptor)?.[1];
  if (!extent) throw new Error('qemu-img wrote a monolithicFlat descriptor without a -flat extent');
  await writeFile(path, descriptor.replace(`"${extent}"`, JSON.stringify(target)));
  await rm(flat, { force: true });
  await rm(join(path, '..', extent), { force: true });
}
