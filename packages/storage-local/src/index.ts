export * from './backend.js';
export * from './config.js';
export * from './content.js';
export * from './directory.js';
export * from './paths.js';
export * from './plugin.js';
