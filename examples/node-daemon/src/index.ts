export { ControlPlaneConnection, type ControlPlaneConnectionOptions, type MessageHandler } from './connection.js';
