/**
 * The tiny bootable guest of the VM network test (scripts/make-test-guest.sh): a raw disk image
 * whose init takes the SSH keys from the NoCloud seed Quantix attaches, gets an address by DHCP
 * and runs dropbear. Built once per set of inputs — the script and the versions of the Debian
 * packages it takes its programs from — and kept under the temp directory.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '../../..');
const SCRIPT = join(repoRoot, 'scripts/make-test-guest.sh');
const PACKAGES = ['linux-image-amd64', 'busybox-static', 'dropbear-bin', 'isolinux', 'syslinux-common', 'xorriso'];

export async function testGuestImage(): Promise<string> {
  const { stdout: versions } = await run('dpkg-query', ['--show', ...PACKAGES]);
  const key = createHash('sha256')
    .update(await readFile(SCRIPT))
    .update(versions)
    .digest('hex')
    .slice(0, 16);
  const dir = join(tmpdir(), 'quantix-test-guest');
  const image = join(dir, `guest-${key}.img`);
  if (existsSync(image)) return image;
  await mkdir(dir, { recursive: true });
  // The script writes OUT.partial and renames it: a build cut short never passes for a whole one.
  await run('bash', [SCRIPT, image], { timeout: 120_000 });
  return image;
}
