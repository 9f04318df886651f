import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode } from '@quantix/core';
import { requireTools } from '@quantix/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireIsoTools } from './__fixtures__/isos.js';
import { identifyOs } from './identify.js';
import { loadOsinfoDatabase } from './osinfo.js';
import { importOsinfoArchive } from './osinfo-import.js';

const run = promisify(execFile);
let base: string;

beforeAll(async () => {
  requireTools({ program: 'tar', debianPackage: 'tar' }, { program: 'xz', debianPackage: 'xz-utils' });
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-osinfo-import-'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** One OS with one ISO media entry, written as osinfo-db's XML files are. */
const osXml = (shortId: string, version: string, volumeId: string) => `<?xml version="1.0" encoding="UTF-8"?>
<libosinfo version="0.0.1">
  <os id="http://example.org/exampleos/${version}">
    <short-id>${shortId}</short-id>
    <name>Example OS ${version}</name>
    <version>${version}</version>
    <vendor>Example</vendor>
    <family>linux</family>
    <distro>exampleos</distro>
    <media arch="x86_64">
      <iso>
        <volume-id>${volumeId}</volume-id>
      </iso>
    </media>
  </os>
</libosinfo>
`;

/**
 * A release archive shaped like osinfo-db's (osinfo-db-VERSION/ holding VERSION, LICENSE, os/),
 * packed by the real tar and xz.
 */
async function releaseArchive(version: string, releases: readonly string[]): Promise<string> {
  const src = await mkdtemp(join(base, 'src-'));
  const top = join(src, `osinfo-db-${version}`);
  await mkdir(join(top, 'os', 'example.org'), { recursive: true });
  await mkdir(join(top, 'schema'));
  await writeFile(join(top, 'VERSION'), `${version}\n`);
  await writeFile(join(top, 'LICENSE'), 'GPL-2.0-or-later\n');
  await writeFile(join(top, 'schema', 'osinfo.rng'), '<grammar/>\n');
  for (const release of releases) {
    await writeFile(
      join(top, 'os', 'example.org', `exampleos-${release}.xml`),
      osXml(`exampleos${release}`, release, `^EXAMPLEOS-${release.replace('.', '-')}-x86_64$`),
    );
  }
  const archive = join(base, `osinfo-db-${version}-${releases.length}.tar.xz`);
  await run('tar', ['-cJf', archive, '-C', src, `osinfo-db-${version}`]);
  return archive;
}

const label = (volumeId: string) => ({
  volumeId,
  systemId: '',
  publisherId: '',
  applicationId: '',
  volumeSizeBytes: 1,
  createdAt: null,
});

describe('importOsinfoArchive', () => {
  it('unpacks a release archive into a directory loadOsinfo then uses, and replaces it with a newer one', async () => {
    const dir = join(base, 'data', 'osinfo');
    const first = await importOsinfoArchive({ file: await releaseArchive('20990101', ['1.0']), dir });
    expect(first).toEqual({ dir, dbVersion: '20990101', previousVersion: null, mediaEntries: 1 });
    // Nothing of the archive's top directory or the staging area is left around the target.
    expect(await readdir(join(base, 'data'))).toEqual(['osinfo']);
    expect((await readdir(dir)).sort()).toEqual(['LICENSE', 'VERSION', 'os', 'schema']);

    const db = await loadOsinfoDatabase({ dir, cacheDir: false });
    expect(db?.dbVersion).toBe('20990101');
    expect(identifyOs({ iso: label('EXAMPLEOS-1-0-x86_64'), osinfo: db })).toMatchObject({
      shortId: 'exampleos1.0',
      confidence: 'exact',
      osinfoVersion: '20990101',
    });

    const second = await importOsinfoArchive({ file: await releaseArchive('20990301', ['1.0', '2.0']), dir });
    expect(second).toEqual({ dir, dbVersion: '20990301', previousVersion: '20990101', mediaEntries: 2 });
    expect(await readdir(join(base, 'data'))).toEqual(['osinfo']);
    const newer = await loadOsinfoDatabase({ dir, cacheDir: false });
    expect(newer?.dbVersion).toBe('20990301');
    expect(identifyOs({ iso: label('EXAMPLEOS-2-0-x86_64'), osinfo: newer }).shortId).toBe('exampleos2.0');
  });

  it('imports the real osinfo-db, packed as its releases are, to the same media entries', async () => {
    // The installed database (Debian's osinfo-db package) under osinfo-db-VERSION/, as upstream ships it.
    const installed = await loadOsinfoDatabase({ dir: '/usr/share/osinfo', cacheDir: false });
    const version = installed?.dbVersion as string;
    const src = await mkdtemp(join(base, 'real-'));
    await run('cp', ['-r', '/usr/share/osinfo', join(src, `osinfo-db-${version}`)]);
    const archive = join(base, `osinfo-db-${version}.tar.xz`);
    await run('tar', ['-cJf', archive, '-C', src, `osinfo-db-${version}`]);
    const dir = join(base, 'real-target');
    const imported = await importOsinfoArchive({ file: archive, dir });
    expect(imported).toMatchObject({ dbVersion: version, mediaEntries: installed?.rules.length });
    expect((await loadOsinfoDatabase({ dir, cacheDir: false }))?.rules.length).toBe(installed?.rules.length);
  });

  it('takes an archive without a top directory too', async () => {
    const src = await mkdtemp(join(base, 'flat-'));
    await mkdir(join(src, 'os', 'example.org'), { recursive: true });
    await writeFile(join(src, 'VERSION'), '20990401\n');
    await writeFile(join(src, 'os', 'example.org', 'exampleos-3.0.xml'), osXml('exampleos3.0', '3.0', '^EXAMPLEOS-3$'));
    const archive = join(base, 'flat.tar.xz');
    await run('tar', ['-cJf', archive, '-C', src, 'VERSION', 'os']);
    const dir = join(base, 'flat-target');
    await expect(importOsinfoArchive({ file: archive, dir })).resolves.toMatchObject({ dbVersion: '20990401' });
    expect((await loadOsinfoDatabase({ dir, cacheDir: false }))?.rules).toHaveLength(1);
  });

  it('refuses archives that are not osinfo-db releases, and leaves the installed database as it was', async () => {
    const dir = join(base, 'kept', 'osinfo');
    await importOsinfoArchive({ file: await releaseArchive('20990101', ['1.0']), dir });

    // A member whose path climbs out of the target (tar -P keeps the ../ that tar strips by default).
    const climbing = join(base, 'climb');
    await mkdir(join(climbing, 'inner'), { recursive: true });
    await writeFile(join(climbing, 'outside.txt'), 'x\n');
    await run('tar', ['-cJPf', join(base, 'climb.tar.xz'), '../outside.txt'], { cwd: join(climbing, 'inner') });
    // A symbolic link, which later members could be written through.
    const linked = join(base, 'linked', 'osinfo-db-20990501');
    await mkdir(join(linked, 'os'), { recursive: true });
    await writeFile(join(linked, 'VERSION'), '20990501\n');
    await symlink('/etc', join(linked, 'os', 'example.org'));
    await run('tar', ['-cJf', join(base, 'linked.tar.xz'), '-C', join(base, 'linked'), 'osinfo-db-20990501']);
    // A tarball of something else, and one whose os/ holds no media.
    const other = join(base, 'other');
    await mkdir(join(other, 'docs'), { recursive: true });
    await writeFile(join(other, 'docs', 'README'), 'hello\n');
    await run('tar', ['-cJf', join(base, 'other.tar.xz'), '-C', other, 'docs']);
    const empty = join(base, 'empty', 'osinfo-db-20990601');
    await mkdir(join(empty, 'os'), { recursive: true });
    await writeFile(join(empty, 'VERSION'), '20990601\n');
    await run('tar', ['-cJf', join(base, 'empty.tar.xz'), '-C', join(base, 'empty'), 'osinfo-db-20990601']);
    // Not xz at all.
    await writeFile(join(base, 'text.tar.xz'), 'not an archive\n');

    for (const [name, why] of [
      ['climb.tar.xz', /points outside the archive/],
      ['linked.tar.xz', /is a link or a special file/],
      ['other.tar.xz', /no os\/ directory/],
      ['empty.tar.xz', /holds no ISO media entries/],
    ] as const) {
      await expect(importOsinfoArchive({ file: join(base, name), dir }), name).rejects.toMatchObject({
        code: ErrorCode.INVALID_INPUT,
        message: expect.stringMatching(why),
      });
    }
    await expect(importOsinfoArchive({ file: join(base, 'text.tar.xz'), dir })).rejects.toMatchObject({
      code: ErrorCode.COMMAND_FAILED,
    });
    await expect(importOsinfoArchive({ file: join(base, 'missing.tar.xz'), dir })).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
    });

    expect(await readdir(join(base, 'kept'))).toEqual(['osinfo']);
    expect((await loadOsinfoDatabase({ dir, cacheDir: false }))?.dbVersion).toBe('20990101');
  });

  it('never replaces a directory that holds something other than an osinfo-db', async () => {
    const dir = join(base, 'home');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'notes.txt'), 'mine\n');
    await expect(importOsinfoArchive({ file: await releaseArchive('20990101', ['1.0']), dir })).rejects.toMatchObject({
      code: ErrorCode.ALREADY_EXISTS,
    });
    expect(await readdir(dir)).toEqual(['notes.txt']);
  });
});
