/** Sign-in: scan a badge (the scanner types the code + Enter) or type operator id and PIN. */
import { useState, type FormEvent } from 'react';
import type { ApiError } from '../../../core/api.js';
import { ErrorText } from '../components/ErrorText.js';
import { t } from '../i18n/index.js';
import { signIn } from '../controller.js';
import { useSlice } from '../store/slice.js';
import { sessionSlice } from '../store/slices.js';

export function Login() {
  const [badge, setBadge] = useState('');
  const [operatorId, setOperatorId] = useState('');
  const [pin, setPin] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const { ended } = useSlice(sessionSlice);

  async function submit(e: FormEvent, args: Parameters<typeof signIn>[0]) {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    const r = await signIn(args);
    setBusy(false);
    setPin('');
    setBadge('');
    setError(r);
  }

  return (
    <main className="login" aria-labelledby="login-title">
      <h1 id="login-title">{t('login.title')}</h1>
      {ended && !error ? (
        <div className="banner banner-info" role="status" id="session-ended">
          <p>{t(ended === 'idle' ? 'login.endedIdle' : 'login.endedAbsolute')}</p>
        </div>
      ) : null}
      {error ? (
        <div className="banner banner-error" role="alert">
          <ErrorText error={error} />
        </div>
      ) : null}
      <div className="login-forms">
        <form className="card" onSubmit={(e) => void submit(e, { badge: badge.trim() })}>
          <h2>{t('login.badgeTitle')}</h2>
          <label htmlFor="badge">{t('login.badge')}</label>
          <input
            id="badge"
            name="badge"
            className="input input-large"
            autoFocus
            autoComplete="off"
            value={badge}
            onChange={(e) => setBadge(e.target.value)}
          />
          <p className="hint">{t('login.badgeHint')}</p>
        </form>
        <form className="card" onSubmit={(e) => void submit(e, { operatorId: operatorId.trim(), pin })}>
          <h2>{t('login.pinTitle')}</h2>
          <label htmlFor="operator-id">{t('login.operatorId')}</label>
          <input
            id="operator-id"
            name="operatorId"
            className="input"
            autoComplete="username"
            value={operatorId}
            onChange={(e) => setOperatorId(e.target.value)}
          />
          <label htmlFor="pin">{t('login.pin')}</label>
          <input
            id="pin"
            name="pin"
            className="input"
            type="password"
            inputMode="numeric"
            autoComplete="off"
            value={pin}
            onChange={(e) => setPin(e.target.value)}
          />
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {t('login.submit')}
          </button>
        </form>
      </div>
    </main>
  );
}
