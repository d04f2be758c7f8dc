/** The header: station, signed-in user, work order, policy version, sync indicator, language. */
import { hasSupervisorRights, signOut } from '../controller.js';
import { LANGUAGES, setLanguage, t, type Language } from '../i18n/index.js';
import { sessionSlice, syncSlice, uiSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

/** The sync indicator's state: offline (station or registry), queued, or synced. */
export function syncIndicator(connected: boolean, view: ReturnType<typeof syncSlice.get>['view']) {
  if (!connected) return { kind: 'offline' as const, text: t('sync.indicator.stationOffline') };
  if (!view) return { kind: 'unknown' as const, text: t('sync.indicator.unknown') };
  const queued = view.pending + view.sent + view.failed;
  if (view.reachable === false || view.registryUrl === null) {
    return { kind: 'offline' as const, text: t('sync.indicator.offline', { queued }) };
  }
  if (queued > 0) return { kind: 'queued' as const, text: t('sync.indicator.queued', { queued }) };
  if (view.reachable === true) return { kind: 'synced' as const, text: t('sync.indicator.synced') };
  return { kind: 'idle' as const, text: t('sync.indicator.idle') };
}

export function Header(props: { lang: Language }) {
  const { status, session, workOrder } = useSlice(sessionSlice);
  const sync = useSlice(syncSlice);
  const ind = syncIndicator(sync.connected, sync.view);
  const sup = hasSupervisorRights(session);
  return (
    <header className="header">
      <div className="header-item">
        <span className="header-key">{t('header.station')}</span>
        <span className="header-value" data-testid="station-id">
          {status?.stationId ?? '–'}
        </span>
      </div>
      <div className="header-item">
        <span className="header-key">{t('header.user')}</span>
        <span className="header-value" data-testid="user">
          {session ? `${session.name} (${t(`role.${session.role}`)})` : t('header.nobody')}
          {session?.supervisor ? ` · ${t('header.elevatedBy', { name: session.supervisor.name })}` : ''}
        </span>
      </div>
      <div className="header-item">
        <span className="header-key">{t('header.workOrder')}</span>
        <span className="header-value" data-testid="work-order">
          {workOrder?.id ?? '–'}
        </span>
      </div>
      <div className="header-item">
        <span className="header-key">{t('header.policy')}</span>
        <span className="header-value">{status?.policyVersion ?? '–'}</span>
      </div>
      {session ? (
        <div className={`sync-indicator sync-${ind.kind}`} data-testid="sync-indicator" data-sync={ind.kind}>
          {ind.text}
        </div>
      ) : null}
      <div className="header-actions">
        <label htmlFor="lang" className="sr-only">
          {t('header.language')}
        </label>
        <select
          id="lang"
          className="input input-small"
          value={props.lang}
          onChange={(e) => setLanguage(e.target.value as Language)}
        >
          {Object.keys(LANGUAGES).map((l) => (
            <option key={l} value={l}>
              {t(`lang.${l as Language}`)}
            </option>
          ))}
        </select>
        {session && !sup ? (
          <button type="button" className="btn" onClick={() => uiSlice.actions.elevationRequested()}>
            {t('header.elevate')}
          </button>
        ) : null}
        {session ? (
          <button type="button" className="btn" onClick={() => void signOut()}>
            {t('header.signOut')}
          </button>
        ) : null}
      </div>
    </header>
  );
}
