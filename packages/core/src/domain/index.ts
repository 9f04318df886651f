export * from './ids.js';
export * from './image.js';
export * from './node.js';
export * from './paths.js';
export * from './pool.js';
export { parseOrThrow } from './validation.js';
export * from './vm.js';
