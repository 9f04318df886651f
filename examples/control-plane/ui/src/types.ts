/**
 * The API's JSON shapes as the page uses them: the answers of its operations, typed by
 * @quantix/client from the API description, so a contract change breaks this build instead of
 * the page. Dates travel as ISO strings.
 */
import type { ResponseBody } from '@quantix/client';

export type ImageRow = ResponseBody<'getImage'>;
/** An image as a write (download, upload) answers it: without a node's path. */
export type ImageRecord = ResponseBody<'downloadImage'>;
export type ImagePhase = ImageRow['phase'];
export type Pool = ResponseBody<'getPool'>;
export type PoolState = Pool['nodeStates'][number];
/** `replicaId`: the control-plane replica holding the node's connection, null when none does. */
export type QNode = ResponseBody<'listNodes'>['nodes'][number];
/** A node just registered, and its token (shown only this once). */
export type RegisteredNode = ResponseBody<'createNode'>;
export type NodeDetail = ResponseBody<'getNode'>;
export type VmRow = ResponseBody<'listVms'>['vms'][number];
/** The sizes a VM of the image gets, from osinfo-db's resources for its OS. */
export type VmDefaultsRow = ResponseBody<'imageVmDefaults'>;
export type Entry = ResponseBody<'listCatalog'>['entries'][number];
export type Available = ResponseBody<'listAvailableImages'>['images'][number];
export type Availability = Available['status'];
export type Health = ResponseBody<'getHealth'>;
