/**
 * Whether a failed tus request is worth another try, for tus clients (tus-js-client's
 * `onShouldRetry`) of the control plane's `/api/v1/uploads/tus`: no answer at all (`status`
 * null), a server failure, or tus's own 409/423 (offset out of step, upload locked: the client's
 * HEAD puts it right). A 409 in the API's JSON error shape (ALREADY_EXISTS, UPLOAD_ON_OTHER_REPLICA)
 * is final, as is every other 4xx, and 507 (UPLOAD_NO_SPACE, POOL_NO_SPACE): a full disk does not
 * empty itself within a retry's wait; the upload resumes when it is run again once there is room.
 */
export function tusRetriable(status: number | null, body: string): boolean {
  if (status === null) return true;
  if (status === 409 || status === 423) return !body.trimStart().startsWith('{');
  return status >= 500 && status !== 507;
}
