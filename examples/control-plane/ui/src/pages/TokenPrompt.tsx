import { type FormEvent, useState } from 'react';
import { ErrorAlert, Field } from '../components.js';

/** Shown instead of the pages while there is no token, or after the API answered 401. */
export function TokenPrompt({
  reason,
  onAccept,
}: {
  reason: 'missing' | 'rejected';
  onAccept: (token: string) => Promise<string | null>;
}) {
  const [token, setToken] = useState('');
  const [fieldError, setFieldError] = useState<string | undefined>();
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!token.trim()) {
      setFieldError('Enter the API token.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setFieldError((await onAccept(token.trim())) ?? undefined);
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="token-prompt" aria-labelledby="token-heading">
      <h1 id="token-heading">{reason === 'rejected' ? 'API token invalid' : 'API token needed'}</h1>
      <p>
        {reason === 'rejected'
          ? 'The control plane refused the token this page was using (401). Enter a valid one to go on.'
          : 'Every request to the control plane carries an API token. Enter the one it was started with.'}{' '}
        <code>quantix up</code> prints an address with the token in it; opening that address fills this in. The token is
        kept for this browser tab only.
      </p>
      <ErrorAlert error={error} title="Could not check the token" />
      <form onSubmit={submit} className="inline-form">
        <Field label="API token" error={fieldError}>
          {(props) => (
            <input
              {...props}
              type="password"
              autoComplete="off"
              value={token}
              onChange={(e) => {
                setToken(e.target.value);
                setFieldError(undefined);
              }}
            />
          )}
        </Field>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Use token'}
        </button>
      </form>
    </section>
  );
}
