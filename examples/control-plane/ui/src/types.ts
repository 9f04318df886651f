/**
 * The API's JSON shapes, derived from core's domain types so a contract change breaks this
 * build instead of the page. Dates travel as ISO strings.
 */
import type { Availability, AvailableImage, VmDefaults } from '@quantix/control-plane';
import type {
  CatalogEntry,
  Image,
  ImagePhase,
  Node as NodeRecord,
  PoolNodeState,
  StoragePool,
  Vm,
} from '@quantix/core';

export type Wire<T> = T extends Date
  ? string
  : T extends readonly (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

export type { Availability, ImagePhase };
export type ImageRow = Wire<Image> & { path: string | null };
export type PoolState = Wire<PoolNodeState>;
export type Pool = Wire<StoragePool> & { nodeStates: PoolState[] };
/** `replicaId`: the control-plane replica holding the node's connection, null when none does. */
export type QNode = Wire<NodeRecord> & { replicaId: string | null };
export type NodeDetail = QNode & { connected: boolean; pools: { pool: Wire<StoragePool>; state: PoolState | null }[] };
export type VmRow = Wire<Vm>;
/** GET /images/{id}/vm-defaults: the sizes a VM of the image gets, from osinfo-db's resources for its OS. */
export type VmDefaultsRow = Wire<VmDefaults>;
export type Entry = Wire<CatalogEntry>;
export type Available = Wire<AvailableImage>;
export type Health = {
  status: string;
  database: string;
  replica: { id: string; version: string; nodes: number };
  connectedNodes: number;
};
