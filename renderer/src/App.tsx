/** The application shell: header, navigation (role-gated), the current view, announcements, shortcuts. */
import { useEffect, useState } from 'react';
import { ErrorBanner } from './components/ErrorText.js';
import { RevokedBanner } from './components/RevokedBanner.js';
import { hasSupervisorRights } from './controller.js';
import { t, useLanguage, setLanguage, language } from './i18n/index.js';
import { sessionSlice, uiSlice, type ViewName } from './store/slices.js';
import { useSlice } from './store/slice.js';
import { Devices } from './views/Devices.js';
import { ElevateDialog } from './views/ElevateDialog.js';
import { Header } from './views/Header.js';
import { Log } from './views/Log.js';
import { Login } from './views/Login.js';
import { Overrides } from './views/Overrides.js';
import { Record } from './views/Record.js';
import { Slots } from './views/Slots.js';
import { Sync } from './views/Sync.js';
import { WorkOrders } from './views/WorkOrders.js';
import { Yield } from './views/Yield.js';

const NAV: readonly { view: ViewName; key: string; supervisor: boolean }[] = [
  { view: 'slots', key: '1', supervisor: false },
  { view: 'log', key: '2', supervisor: true },
  { view: 'yield', key: '3', supervisor: true },
  { view: 'sync', key: '4', supervisor: true },
  { view: 'devices', key: '5', supervisor: true },
  { view: 'overrides', key: '6', supervisor: true },
];

/** Global shortcuts: Alt+1..6 views, Alt+E elevate, Alt+L language, Escape back / dismiss. */
function useShortcuts(signedIn: boolean, supervisor: boolean) {
  useEffect(() => {
    function onKey(e: KeyboardEvent) {
      if (e.altKey && !e.ctrlKey && !e.metaKey) {
        const nav = NAV.find((n) => n.key === e.key);
        if (nav && signedIn && (!nav.supervisor || supervisor)) {
          e.preventDefault();
          uiSlice.actions.viewChosen(nav.view);
          return;
        }
        if (e.key.toLowerCase() === 'e' && signedIn && !supervisor) {
          e.preventDefault();
          uiSlice.actions.elevationRequested();
          return;
        }
        if (e.key.toLowerCase() === 'l') {
          e.preventDefault();
          setLanguage(language() === 'en' ? 'de' : 'en');
          return;
        }
      }
      if (e.key === 'Escape' && !document.querySelector('dialog[open]')) {
        if (uiSlice.get().error) uiSlice.actions.errorDismissed();
        else if (uiSlice.get().view === 'record') uiSlice.actions.viewChosen('log');
      }
    }
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [signedIn, supervisor]);
}

export function App(props: { transportMissing?: boolean }) {
  const lang = useLanguage();
  const { session, workOrder } = useSlice(sessionSlice);
  const ui = useSlice(uiSlice);
  const supervisor = hasSupervisorRights(session);
  useShortcuts(session !== null, supervisor);

  useEffect(() => {
    document.title = t('app.title');
  }, [lang]);
  // Re-render when a supervisor elevation expires (the nav and views are role-gated).
  const [, setExpired] = useState(0);
  const until = session?.supervisor ? Date.parse(session.supervisor.until) : NaN;
  useEffect(() => {
    if (!Number.isFinite(until)) return;
    const ms = Math.min(2 ** 31 - 1, Math.max(0, until - Date.now()) + 50);
    const id = setTimeout(() => setExpired((n) => n + 1), ms);
    return () => clearTimeout(id);
  }, [until]);

  let view = ui.view;
  if (!supervisor && view !== 'slots') view = 'slots';

  let body;
  if (props.transportMissing) body = <p className="banner banner-error">{t('app.noTransport')}</p>;
  else if (!session) body = <Login />;
  else if (view === 'slots' && !workOrder) body = <WorkOrders />;
  else if (view === 'slots') body = <Slots />;
  else if (view === 'log') body = <Log />;
  else if (view === 'record') body = <Record />;
  else if (view === 'yield') body = <Yield />;
  else if (view === 'sync') body = <Sync />;
  else if (view === 'devices') body = <Devices />;
  else body = <Overrides />;

  return (
    <div className="app" data-lang={lang}>
      <a className="skip-link" href="#content">
        {t('app.skip')}
      </a>
      <Header lang={lang} />
      {session ? (
        <nav className="nav" aria-label={t('nav.label')}>
          {NAV.filter((n) => !n.supervisor || supervisor).map((n) => (
            <button
              key={n.view}
              type="button"
              className={`nav-btn ${view === n.view || (view === 'record' && n.view === 'log') ? 'nav-current' : ''}`}
              aria-current={view === n.view ? 'page' : undefined}
              aria-keyshortcuts={`Alt+${n.key}`}
              data-view={n.view}
              onClick={() => uiSlice.actions.viewChosen(n.view)}
            >
              {t(`nav.${n.view}`)}
              <kbd>{t('nav.shortcut', { key: n.key })}</kbd>
            </button>
          ))}
        </nav>
      ) : null}
      <RevokedBanner />
      <ErrorBanner error={ui.error} onDismiss={() => uiSlice.actions.errorDismissed()} />
      <div id="content" className="content">
        {body}
      </div>
      <div className="sr-only" aria-live="assertive" role="status" data-testid="announcer">
        {ui.announcement}
      </div>
      <ElevateDialog />
    </div>
  );
}
