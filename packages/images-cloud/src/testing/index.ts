export * from './image-server.js';
export * from './images.js';
