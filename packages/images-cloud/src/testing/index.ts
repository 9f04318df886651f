export { type ImageServer, type RequestRecord, type ServerBehaviour, startImageServer } from './image-server.js';
export { makeQcow2, sha256, sha256Sums, VIRTUAL_SIZE } from './images.js';
