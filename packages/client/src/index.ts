export {
  type CallOptions,
  type OperationId,
  type PathParams,
  QuantixClient,
  type QuantixClientOptions,
  type QueryParams,
  type RawBody,
  type RequestBody,
  type RequestInput,
  type ResponseBody,
} from './client.js';
export { ApiError, type FieldIssue } from './errors.js';
export { type components, operationRoutes, type operations, type paths } from './generated.js';
export { nodeConnectCommands } from './node-connect.js';
export { tusRetriable } from './tus.js';
