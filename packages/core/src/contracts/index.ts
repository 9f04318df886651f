export type * from './catalog.js';
export type * from './command-runner.js';
export type * from './fetcher.js';
export * from './hypervisor.js';
export type * from './inspector.js';
export type * from './pool-type.js';
export type * from './repositories.js';
export type * from './storage.js';
