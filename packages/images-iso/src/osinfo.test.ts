import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireIsoTools } from './__fixtures__/isos.js';
import { compileGlibRegex as compileGlib, requiredLiteral } from './glib-regex.js';
import { clearOsinfoDatabaseCache, defaultOsinfoDir, getOsinfoDatabase, loadOsinfoDatabase } from './osinfo.js';

let dir: string;

beforeAll(async () => {
  requireIsoTools();
  dir = await mkdtemp(join(tmpdir(), 'quantix-osinfo-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small osinfo-db of our own, in the real layout, to pin down the matching rules. */
async function writeDatabase(root: string): Promise<void> {
  await mkdir(join(root, 'os', 'example.org'), { recursive: true });
  await writeFile(join(root, 'VERSION'), '20990101\n');
  await writeFile(
    join(root, 'os', 'example.org', 'exos-1.xml'),
    `<?xml version="1.0" encoding="UTF-8"?>
<libosinfo version="0.0.1">
  <!-- <os id="commented-out"><media><iso><volume-id>.*</volume-id></iso></media></os> -->
  <os id="http://example.org/exos/1">
    <short-id>exos1</short-id>
    <name>ExOS 1</name>
    <name xml:lang="de">ExOS 1 (deutsch)</name>
    <version>1</version>
    <family>linux</family>
    <distro>exos</distro>
    <release-date>2020-01-01</release-date>
    <tree arch="x86_64"><treeinfo><family>Not the OS family</family></treeinfo></tree>
    <media arch="x86_64">
      <iso>
        <volume-id>EXOS 1 &amp; more</volume-id>
        <publisher-id>EXAMPLE &lt;ORG&gt;</publisher-id>
      </iso>
    </media>
    <media arch="aarch64" live="true">
      <iso>
        <volume-id>^EXOS-1-ARM</volume-id>
        <volume-size>4096000</volume-size>
      </iso>
    </media>
  </os>
</libosinfo>
`,
  );
  await writeFile(
    join(root, 'os', 'example.org', 'no-media.xml'),
    '<libosinfo><os id="http://example.org/other"><short-id>other</short-id></os></libosinfo>',
  );
}

describe('osinfo-db loading and matching', () => {
  it('reads media entries as libosinfo does: every given field must match, and the volume size exactly', async () => {
    const root = join(dir, 'db');
    await writeDatabase(root);
    const db = await loadOsinfoDatabase({ dir: root, cacheDir: false });
    expect(db?.dbVersion).toBe('20990101');
    expect(db?.rules).toEqual([
      expect.objectContaining({
        osId: 'http://example.org/exos/1',
        shortId: 'exos1',
        name: 'ExOS 1',
        family: 'linux',
        distro: 'exos',
        arch: 'x86_64',
        live: false,
        volumeId: 'EXOS 1 & more',
        publisherId: 'EXAMPLE <ORG>',
      }),
      expect.objectContaining({ arch: 'aarch64', live: true, volumeId: '^EXOS-1-ARM', volumeSize: 4096000 }),
    ]);
    const match = (volumeId: string, publisherId: string, volumeSizeBytes = 1) =>
      db?.match({ volumeId, publisherId, volumeSizeBytes }).map((m) => m.rule.arch);
    expect(match('EXOS 1 & more', 'EXAMPLE <ORG>')).toEqual(['x86_64']);
    expect(match('Custom EXOS 1 & more disc', 'EXAMPLE <ORG> INC')).toEqual(['x86_64']); // unanchored, as GRegex searches
    expect(match('EXOS 1 & more', 'SOMEONE ELSE')).toEqual([]);
    expect(match('EXOS-1-ARM', '', 4096000)).toEqual(['aarch64']);
    expect(match('EXOS-1-ARM', '', 4096001)).toEqual([]);
  });

  it('leaves out a damaged file, not the whole database', async () => {
    const root = join(dir, 'damaged-db');
    await writeDatabase(root);
    await writeFile(join(root, 'os', 'example.org', 'broken.xml'), '<libosinfo><os id="x"><media><iso></media></os>');
    const db = await loadOsinfoDatabase({ dir: root, cacheDir: false });
    expect(db?.rules.map((r) => r.shortId)).toEqual(['exos1', 'exos1']);
    expect(db?.skippedFiles).toEqual([
      { file: join(root, 'os', 'example.org', 'broken.xml'), reason: expect.stringContaining('</media> closes <iso>') },
    ]);
  });

  it('is null where there is no database, so identification falls back to the built-in table', async () => {
    expect(await loadOsinfoDatabase({ dir: join(dir, 'nowhere') })).toBeNull();
  });

  it('translates every ISO pattern of the installed osinfo-db', async () => {
    const db = await loadOsinfoDatabase();
    expect(db?.dir).toBe(defaultOsinfoDir());
    expect(db?.rules.length).toBeGreaterThan(1500);
    expect(db?.skippedPatterns).toEqual([]);
    // Windows media are identified by publisher as well as label.
    expect(db?.rules.find((r) => r.shortId === 'win11')).toMatchObject({ publisherId: 'MICROSOFT CORPORATION' });
  });

  it('never lets the literal pre-check hide a match', async () => {
    const db = await loadOsinfoDatabase();
    const compiled = new Map<string, RegExp>();
    const compileGlibRegex = (pattern: string) => {
      const regex = compiled.get(pattern) ?? compileGlib(pattern);
      compiled.set(pattern, regex);
      return regex;
    };
    let sampled = 0;
    for (const rule of db?.rules ?? []) {
      if (!rule.volumeId) continue;
      const regex = compileGlibRegex(rule.volumeId);
      const literal = requiredLiteral(regex.source, regex.flags);
      // Shortest and longer strings the pattern matches: each must contain the literal.
      for (const sample of [sampleOf(regex.source, 'short'), sampleOf(regex.source, 'long')]) {
        if (!regex.test(sample)) continue;
        sampled += 1;
        if (literal) expect(sample, `${rule.volumeId} / ${literal}`).toContain(literal);
        // And the entry itself is found for media carrying that label and its other ids.
        const other = (pattern: string | null) => (pattern ? sampleOf(compileGlibRegex(pattern).source, 'short') : '');
        const fields = {
          volumeId: sample,
          systemId: other(rule.systemId),
          publisherId: other(rule.publisherId),
          applicationId: other(rule.applicationId),
          volumeSizeBytes: rule.volumeSize ?? 1,
        };
        const ids = [fields.systemId, fields.publisherId, fields.applicationId];
        const patterns = [rule.systemId, rule.publisherId, rule.applicationId];
        if (patterns.every((p, n) => !p || compileGlibRegex(p).test(ids[n] as string))) {
          expect(
            db?.match(fields).some((m) => m.rule === rule),
            sample,
          ).toBe(true);
        }
      }
    }
    expect(sampled).toBeGreaterThan(1500);
    // Labels of real media still find their entries.
    for (const [volumeId, shortId] of [
      ['Ubuntu-Server 22.04.3 LTS amd64', 'ubuntu22.04'],
      ['Debian 11.2.0 amd64 n', 'debian11'],
      ['Fedora-S-dvd-x86_64-37', 'fedora37'],
      ['CentOS-Stream-9-BaseOS-x86_64', 'centos-stream9'],
      ['Rocky-9-4-x86_64-dvd', 'rocky9'],
    ] as const) {
      expect(
        db?.match({ volumeId, systemId: 'LINUX' }).map((m) => m.rule.shortId),
        volumeId,
      ).toContain(shortId);
    }
  });

  it('loads once per process and keeps the result', async () => {
    clearOsinfoDatabaseCache();
    const first = getOsinfoDatabase();
    const second = getOsinfoDatabase();
    expect(second).toBe(first);
    expect(await second).toBe(await first);
  });

  it('writes a compiled cache that the next process reads instead of the XML, and ignores a stale or broken one', async () => {
    const root = join(dir, 'cached-db');
    await writeDatabase(root);
    const cacheDir = join(dir, 'cache');
    const fromFiles = await loadOsinfoDatabase({ dir: root, cacheDir });
    expect(fromFiles?.loadedFrom).toBe('files');
    const fromCache = await loadOsinfoDatabase({ dir: root, cacheDir });
    expect(fromCache?.loadedFrom).toBe('cache');
    expect(fromCache?.rules).toEqual(fromFiles?.rules);
    expect(fromCache?.match({ volumeId: 'EXOS 1 & more', publisherId: 'EXAMPLE <ORG>' })).toHaveLength(1);

    // An upgrade replaces files by rename: the vendor directory's mtime changes and the cache is stale.
    const exos1 = await readFile(join(root, 'os', 'example.org', 'exos-1.xml'), 'utf8');
    await writeFile(
      join(root, 'os', 'example.org', 'exos-2.xml'),
      exos1.replaceAll('exos/1', 'exos/2').replace('exos1', 'exos2'),
    );
    const afterUpgrade = await loadOsinfoDatabase({ dir: root, cacheDir });
    expect(afterUpgrade?.loadedFrom).toBe('files');
    expect(afterUpgrade?.rules.map((r) => r.shortId)).toEqual(['exos1', 'exos1', 'exos2', 'exos2']);

    for (const name of await readdir(cacheDir)) {
      await writeFile(join(cacheDir, name), '{ not json');
    }
    expect((await loadOsinfoDatabase({ dir: root, cacheDir }))?.loadedFrom).toBe('files');
    expect((await loadOsinfoDatabase({ dir: root, cacheDir }))?.loadedFrom).toBe('cache');
    // A cache file others may write is not trusted.
    for (const name of await readdir(cacheDir)) await chmod(join(cacheDir, name), 0o666);
    expect((await loadOsinfoDatabase({ dir: root, cacheDir }))?.loadedFrom).toBe('files');
  });
});

/**
 * A string a JavaScript pattern (of the kinds osinfo-db uses) matches: the first alternative of
 * each alternation, the first character of each class, and the fewest ('short') or a few more
 * ('long') repetitions of each quantified part. Good enough to exercise the patterns; a sample the
 * pattern does not match is simply not used.
 */
function sampleOf(source: string, mode: 'short' | 'long'): string {
  let i = 0;
  const escapeSample: Record<string, string> = { d: '7', D: 'x', w: 'a', W: '-', s: ' ', S: 'x', b: '', B: '' };
  const alternation = (): string => {
    const first = sequence();
    while (source[i] === '|') {
      i += 1;
      sequence();
    }
    return first;
  };
  const sequence = (): string => {
    let out = '';
    while (i < source.length && source[i] !== '|' && source[i] !== ')') {
      let piece = '';
      let lookaround = false;
      const c = source[i] as string;
      if (c === '(') {
        i += 1;
        if (source[i] === '?') {
          const kind = source.slice(i, i + 3);
          lookaround =
            kind.startsWith('?=') || kind.startsWith('?!') || kind.startsWith('?<=') || kind.startsWith('?<!');
          i += kind.startsWith('?<') ? 3 : 2;
        }
        piece = alternation();
        i += 1; // ')'
        if (lookaround) piece = '';
      } else if (c === '[') {
        const close = source.indexOf(']', i + 2);
        const body = source.slice(i + 1, close);
        piece = body.startsWith('^')
          ? 'Q'
          : body.startsWith('\\')
            ? (escapeSample[body[1] as string] ?? (body[1] as string))
            : (body[0] as string);
        i = close + 1;
      } else if (c === '\\') {
        const e = source[i + 1] as string;
        piece = escapeSample[e] ?? e;
        i += 2;
      } else if (c === '^' || c === '$') {
        i += 1;
      } else {
        piece = c === '.' ? 'x' : c;
        i += 1;
      }
      const q = /^(\?|\*|\+|\{(\d+)(?:,(\d*))?\})\??/.exec(source.slice(i));
      if (q) {
        i += q[0].length;
        const min = q[1] === '?' || q[1] === '*' ? 0 : q[1] === '+' ? 1 : Number(q[2]);
        const count =
          mode === 'short' ? min : Math.max(min, q[1] === '?' ? 1 : min + (q[1] === '+' || q[1] === '*' ? 2 : 0));
        piece = piece.repeat(count);
      }
      out += piece;
    }
    return out;
  };
  return alternation();
}
