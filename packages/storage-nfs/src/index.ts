export * from './backend.js';
export * from './commands.js';
export * from './config.js';
export * from './mountinfo.js';
export * from './plugin.js';
