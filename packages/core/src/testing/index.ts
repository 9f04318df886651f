export * from './databases.js';
export * from './errors.js';
export * from './system.js';
