/** One invalid field of a request, as `details.issues` of an INVALID_INPUT error lists it. */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Every failure of a call: the API's `{ error: { code, message, details } }` with the HTTP
 * status, or no answer at all (status 0, code UNREACHABLE).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The error an answer other than 2xx stands for, from its status and its (parsed) JSON body. */
  static fromAnswer(status: number, statusText: string, body: unknown): ApiError {
    const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
    const details = error?.details;
    return new ApiError(
      status,
      typeof error?.code === 'string' ? error.code : `HTTP_${status}`,
      typeof error?.message === 'string' ? error.message : `The control plane answered ${status} ${statusText}`.trim(),
      details && typeof details === 'object' ? (details as Record<string, unknown>) : {},
    );
  }

  /** The invalid fields of an INVALID_INPUT error; empty for other errors. */
  get issues(): FieldIssue[] {
    const issues = this.details.issues;
    return Array.isArray(issues) ? (issues as FieldIssue[]) : [];
  }

  /**
   * Validation issues by the top-level field they concern: `body.name` → `name`,
   * `body.sshAuthorizedKeys.2` → `sshAuthorizedKeys`. Several issues on one field are joined.
   */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const issue of this.issues) {
      const parts = String(issue.path ?? '').split('.');
      if (['body', 'querystring', 'params'].includes(parts[0] ?? '')) parts.shift();
      const field = parts[0] || '';
      out[field] = out[field] ? `${out[field]}; ${issue.message}` : issue.message;
    }
    return out;
  }
}
