export { type ImageServer, type RequestRecord, type ServerBehaviour, startImageServer } from './image-server.js';
export {
  createImage,
  makeQcow2,
  makeVmdkDescriptorNaming,
  sha256,
  sha256Sums,
  VIRTUAL_SIZE,
} from './images.js';
