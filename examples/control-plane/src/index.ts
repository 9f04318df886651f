// The app as the benches and tests start it; the workflows themselves are @quantix/control-plane's.

export { type AllInOneOptions, startAllInOne } from './cli/up.js';
export { tusFileReader } from './cli/upload.js';
export { API_PREFIX, type ControlPlane, type ControlPlaneOptions, startControlPlane } from './control-plane.js';
export { statusFor } from './http/errors.js';
