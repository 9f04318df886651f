import { lazy, Suspense, useEffect, useState } from 'react';
import { ApiError, client, onUnauthorized, tokenStore } from './api.js';
import { Link } from './components.js';
import { navigate, SAFETY_REFRESH_MS, useLocation, usePoll } from './hooks.js';
import { ImagesPage } from './pages/ImagesPage.js';
import { NodesPage } from './pages/NodesPage.js';
import { PoolsPage } from './pages/PoolsPage.js';
import { TokenPrompt } from './pages/TokenPrompt.js';
import { VmsPage } from './pages/VmsPage.js';
import { VmWizard } from './pages/VmWizard.js';

type Auth = 'missing' | 'rejected' | 'ok';

// The terminal and VNC viewer are most of the page's weight: loaded when a console is opened.
const ConsolePage = lazy(async () => ({ default: (await import('./pages/ConsolePage.js')).ConsolePage }));

const NAV = [
  { to: '/images', label: 'Images' },
  { to: '/pools', label: 'Pools' },
  { to: '/nodes', label: 'Nodes' },
  { to: '/vms', label: 'VMs' },
  { to: '/vms/new', label: 'Create VM' },
];

export function App() {
  const [auth, setAuth] = useState<Auth>(() => (tokenStore.get() ? 'ok' : 'missing'));
  const { pathname } = useLocation();

  useEffect(() => {
    onUnauthorized(() => setAuth('rejected'));
    return () => onUnauthorized(null);
  }, []);

  useEffect(() => {
    if (pathname === '/') navigate('/images', { replace: true });
  }, [pathname]);

  const page = (() => {
    switch (pathname) {
      case '/images':
        return <ImagesPage />;
      case '/pools':
        return <PoolsPage />;
      case '/nodes':
        return <NodesPage />;
      case '/vms':
        return <VmsPage />;
      case '/vms/new':
        return <VmWizard />;
      case '/vms/console':
        return (
          <Suspense fallback={<p>Loading the console…</p>}>
            <ConsolePage />
          </Suspense>
        );
      case '/':
        return null;
      default:
        return (
          <section>
            <h1>Not found</h1>
            <p>
              There is no page at <code>{pathname}</code>. <Link to="/images">Go to images</Link>.
            </p>
          </section>
        );
    }
  })();

  return (
    <div className="layout">
      <header className="topbar">
        <span className="brand">Quantix</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.to}>
                <Link to={item.to} aria-current={pathname === item.to ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <HealthIndicator />
        {auth === 'ok' && (
          <button
            type="button"
            className="link-button"
            onClick={() => {
              tokenStore.clear();
              setAuth('missing');
            }}
          >
            Change token
          </button>
        )}
      </header>
      <main>
        {auth === 'ok' ? (
          page
        ) : (
          <TokenPrompt
            reason={auth}
            onAccept={async (token) => {
              // Checked with a real call first, so a typo is caught here and not on every page.
              try {
                await client.request('listNodes', { token });
              } catch (error) {
                if (error instanceof ApiError && error.status === 401) return 'The control plane refused this token.';
                throw error;
              }
              tokenStore.set(token);
              setAuth('ok');
              return null;
            }}
          />
        )}
      </main>
    </div>
  );
}

/** Reachability and database from /healthz (no token needed), so an outage is visible on every page. */
function HealthIndicator() {
  // Its figure of connected nodes follows their events; the safety refresh notices a lost control plane.
  const health = usePoll((signal) => client.request('getHealth', { signal }), {
    intervalMs: SAFETY_REFRESH_MS,
    deps: [],
    live: { kinds: ['node'] },
  });
  if (health.error) {
    return (
      <span className="health health-bad" role="status">
        Control plane unreachable
      </span>
    );
  }
  if (!health.data) return <span className="health">…</span>;
  const n = health.data.connectedNodes;
  return (
    <span
      className={`health ${n > 0 ? 'health-ok' : 'health-warn'}`}
      role="status"
      title={`database: ${health.data.database}`}
    >
      {n} node{n === 1 ? '' : 's'} connected
    </span>
  );
}
