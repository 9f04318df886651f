export { API_PREFIX, type ControlPlane, type ControlPlaneOptions, startControlPlane } from './control-plane.js';
export { statusFor } from './http/errors.js';
export { NodeHub } from './hub/node-hub.js';
export { newToken, tokenDigest } from './hub/tokens.js';
export { DownloadService } from './services/downloads.js';
export { type CreateVmInput, createVmSchema, VmService } from './services/vms.js';
