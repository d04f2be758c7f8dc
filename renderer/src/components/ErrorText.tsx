/**
 * An ApiError for people, in the UI's language: what happened and the guidance (from the code and its params:
 * i18n/errors.ts), the next action and the code; the station's own English message under "Details" when the text
 * shown is not it.
 */
import type { ApiError } from '../../../core/api.js';
import { localiseError } from '../i18n/errors.js';
import { hasKey, t, useLanguage } from '../i18n/index.js';

export function actionText(action: ApiError['action']): string {
  const key = `action.${action}`;
  return hasKey(key) ? t(key) : action;
}

export function ErrorText(props: { error: ApiError }) {
  const e = props.error;
  const l = localiseError(e, useLanguage());
  return (
    <div className="error-text" data-code={e.code} data-localised={String(l.localised)}>
      <p className="error-what">{l.text}</p>
      <p className="error-guidance">{l.guidance}</p>
      <p className={`error-action action-${e.action}`}>{actionText(e.action)}</p>
      <p className="error-code">{t('error.code', { code: e.code })}</p>
      {l.localised && e.message !== l.text ? (
        <details className="error-details">
          <summary>{t('error.details')}</summary>
          <p className="error-message" lang="en">
            {e.message}
          </p>
        </details>
      ) : null}
    </div>
  );
}

export function ErrorBanner(props: { error: ApiError | null; onDismiss: () => void }) {
  if (!props.error) return null;
  return (
    <div className="banner banner-error" role="alert">
      <ErrorText error={props.error} />
      <button type="button" className="btn" onClick={props.onDismiss}>
        {t('common.dismiss')}
      </button>
    </div>
  );
}
