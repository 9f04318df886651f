export { ControlPlaneConnection, type ControlPlaneConnectionOptions, type MessageHandler } from './connection.js';
export { dialOrder, type Endpoint } from './endpoints.js';
export {
  AGENT_VERSION,
  type NodeDaemon,
  type NodeDaemonOptions,
  poolRootsOption,
  probeLibvirt,
  startNodeDaemon,
} from './node.js';
