/**
 * Test helpers for other packages' tests (`@quantix/images-iso/testing`): real ISOs made with
 * xorriso and genisoimage, under the volume ids real media carry.
 */
export { buildIso, type IsoSpec, REAL_MEDIA, requireIsoTools } from './__fixtures__/isos.js';
