export * from './databases.js';
export * from './errors.js';
