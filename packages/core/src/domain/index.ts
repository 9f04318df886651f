export * from './ids.js';
export * from './image.js';
export * from './node.js';
export * from './paths.js';
export * from './pool.js';
export * from './pool-roots.js';
export {
  hasUnsafeNameCharacter,
  parseOrThrow,
  replaceUnsafeNameCharacters,
  UNSAFE_NAME_MESSAGE,
} from './validation.js';
export * from './vm.js';
