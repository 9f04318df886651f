import { describe, expect, it } from 'vitest';
import { ErrorCode, QuantixError } from '../errors.js';
import { imageIdForLocation } from './ids.js';
import {
  assertImageTransition,
  canTransitionImage,
  IMAGE_PHASE_TRANSITIONS,
  IMAGE_PHASES,
  validateDiscoveredImage,
  validateImagePatch,
  validateNewImage,
} from './image.js';

function errorOf(fn: () => unknown): QuantixError {
  try {
    fn();
  } catch (error) {
    if (error instanceof QuantixError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

describe('image phase transitions', () => {
  it('follow the download lifecycle pending → downloading → verifying → ready', () => {
    expect(canTransitionImage('pending', 'downloading')).toBe(true);
    expect(canTransitionImage('downloading', 'verifying')).toBe(true);
    expect(canTransitionImage('verifying', 'ready')).toBe(true);
  });

  it('let a failed download be retried and a vanished file come back', () => {
    expect(canTransitionImage('error', 'pending')).toBe(true);
    expect(canTransitionImage('error', 'downloading')).toBe(true);
    expect(canTransitionImage('ready', 'missing')).toBe(true);
    expect(canTransitionImage('missing', 'ready')).toBe(true);
  });

  it('let a verify take an image whose file is not the one recorded out of use, and read it again after', () => {
    expect(canTransitionImage('ready', 'error')).toBe(true);
    expect(canTransitionImage('error', 'verifying')).toBe(true);
  });

  it('refuse shortcuts that would mark unverified bytes ready', () => {
    expect(canTransitionImage('downloading', 'ready')).toBe(false);
    expect(canTransitionImage('error', 'ready')).toBe(false);
    expect(canTransitionImage('deleting', 'ready')).toBe(false);
  });

  it('allow every phase to stay where it is (progress and metadata updates)', () => {
    for (const phase of IMAGE_PHASES) expect(canTransitionImage(phase, phase)).toBe(true);
  });

  it('only name known phases in the table, and every phase has an entry', () => {
    expect(Object.keys(IMAGE_PHASE_TRANSITIONS).sort()).toEqual([...IMAGE_PHASES].sort());
    for (const targets of Object.values(IMAGE_PHASE_TRANSITIONS)) {
      for (const target of targets) expect(IMAGE_PHASES).toContain(target);
    }
  });

  it('report an illegal transition with its code, both phases and what is allowed', () => {
    const error = errorOf(() => assertImageTransition('downloading', 'ready', 'img-1'));
    expect(error.code).toBe(ErrorCode.ILLEGAL_PHASE_TRANSITION);
    expect(error.message).toContain("'downloading' to 'ready'");
    expect(error.details).toMatchObject({ imageId: 'img-1', from: 'downloading', to: 'ready' });
    expect(error.details.allowed).toContain('verifying');
  });
});

describe('image validation', () => {
  it('fills defaults for a minimal new image', () => {
    const image = validateNewImage({ name: 'Ubuntu 24.04', kind: 'cloud' });
    expect(image).toMatchObject({
      phase: 'pending',
      labels: {},
      os: { family: 'unknown', cloudInit: false },
      requirements: { minCpu: 1, firmware: 'any' },
      location: null,
    });
  });

  it.each([
    [{ name: '', kind: 'cloud' }, 'name'],
    [{ name: '   ', kind: 'cloud' }, 'name'],
    [{ name: 'x', kind: 'floppy' }, 'kind'],
    [{ name: 'x', kind: 'cloud', sizeBytes: -1 }, 'sizeBytes'],
    [{ name: 'x', kind: 'cloud', sizeBytes: 1.5 }, 'sizeBytes'],
    [{ name: 'x', kind: 'cloud', phase: 'exploded' }, 'phase'],
    [{ name: 'x', kind: 'cloud', checksum: { algorithm: 'sha256', value: 'abc' } }, 'checksum.value'],
    [{ name: 'x', kind: 'cloud', checksum: { algorithm: 'md5', value: 'abc' } }, 'checksum.algorithm'],
    [{ name: 'x', kind: 'cloud', unknownField: 1 }, '(root)'],
  ])('refuses %j with INVALID_INPUT naming %s', (input, path) => {
    const error = errorOf(() => validateNewImage(input as never));
    expect(error.code).toBe(ErrorCode.INVALID_INPUT);
    expect((error.details.issues as { path: string }[]).map((i) => i.path)).toContain(path);
  });

  it('refuses a new image in a phase other than pending or ready', () => {
    const error = errorOf(() => validateNewImage({ name: 'x', kind: 'iso', phase: 'downloading' }));
    expect(error.code).toBe(ErrorCode.INVALID_INPUT);
    expect(error.message).toMatch(/starts in phase 'pending' or 'ready'/);
  });

  it.each(['/abs/x.iso', '../x.iso', 'a/../../x.iso'])('refuses a location with relPath %j', (relPath) => {
    const error = errorOf(() => validateNewImage({ name: 'x', kind: 'iso', location: { poolId: 'p', relPath } }));
    expect(error.code).toBe(ErrorCode.PATH_ESCAPES_POOL);
    const patchError = errorOf(() => validateImagePatch({ location: { poolId: 'p', relPath } }));
    expect(patchError.code).toBe(ErrorCode.PATH_ESCAPES_POOL);
  });

  it('refuses to patch managed fields', () => {
    expect(errorOf(() => validateImagePatch({ version: 3 } as never)).code).toBe(ErrorCode.INVALID_INPUT);
    expect(errorOf(() => validateImagePatch({ id: 'x' } as never)).code).toBe(ErrorCode.INVALID_INPUT);
  });

  it('names a discovered file after its last path segment', () => {
    const found = validateDiscoveredImage({
      poolId: 'p',
      relPath: 'iso/debian-12.7.0-amd64-netinst.iso',
      kind: 'iso',
      sizeBytes: 1,
    });
    expect(found.name).toBe('debian-12.7.0-amd64-netinst.iso');
  });

  it('replaces terminal escapes and bidi overrides in a found file’s labels, and refuses them in a new image’s', () => {
    const found = validateDiscoveredImage({
      poolId: 'p',
      relPath: 'evil.iso',
      kind: 'iso',
      sizeBytes: 1,
      labels: { 'iso.quantix.io/volume-id': 'EVIL\x1b[2J', 'a\u202Eb': 'ok' },
    });
    expect(found.labels).toEqual({ 'iso.quantix.io/volume-id': 'EVIL\uFFFD[2J', 'a\uFFFDb': 'ok' });
    const refused = errorOf(() => validateNewImage({ name: 'x', kind: 'iso', labels: { tier: 'gold\x1b[2J' } }));
    expect(refused.code).toBe(ErrorCode.INVALID_INPUT);
    expect(refused.message).toMatch(/labels\.tier: must not contain control or bidirectional formatting characters/);
  });

  it('keeps how an OS was identified when given, and adds nothing to rows that never had it', () => {
    const os = { family: 'linux', shortId: 'fedora41', confidence: 'extrapolated', osinfoVersion: '20221203' } as const;
    expect(validateDiscoveredImage({ poolId: 'p', relPath: 'f.iso', kind: 'iso', sizeBytes: 1, os }).os).toMatchObject(
      os,
    );
    expect(validateNewImage({ name: 'x', kind: 'iso' }).os).not.toHaveProperty('shortId');
    expect(validateImagePatch({ os: { family: 'linux' } }).os).toEqual({
      family: 'linux',
      distribution: null,
      version: null,
      arch: null,
      defaultUser: null,
      cloudInit: false,
    });
    const guessed = { family: 'linux', confidence: 'guessed' } as never;
    expect(errorOf(() => validateImagePatch({ os: guessed })).code).toBe(ErrorCode.INVALID_INPUT);
  });
});

describe('imageIdForLocation', () => {
  it('is deterministic per (pool, relPath), distinct across them, and a UUID v5', () => {
    const a = imageIdForLocation('pool-a', 'x.iso');
    expect(imageIdForLocation('pool-a', 'x.iso')).toBe(a);
    expect(imageIdForLocation('pool-b', 'x.iso')).not.toBe(a);
    expect(imageIdForLocation('pool-a', 'y.iso')).not.toBe(a);
    // No ambiguity from concatenation: ('ab', 'c') and ('a', 'bc') differ.
    expect(imageIdForLocation('ab', 'c')).not.toBe(imageIdForLocation('a', 'bc'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
