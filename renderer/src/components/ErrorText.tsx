/** An ApiError for people: what happened, the station's guidance and the next action. */
import type { ApiError } from '../../../core/api.js';
import { hasKey, t } from '../i18n/index.js';

export function actionText(action: ApiError['action']): string {
  const key = `action.${action}`;
  return hasKey(key) ? t(key) : action;
}

export function ErrorText(props: { error: ApiError }) {
  const e = props.error;
  const codeKey = `error.${e.code}`;
  return (
    <div className="error-text">
      <p className="error-what">{hasKey(codeKey) ? t(codeKey) : e.message}</p>
      <p className="error-guidance">{e.guidance}</p>
      <p className={`error-action action-${e.action}`}>{actionText(e.action)}</p>
      <p className="error-code">{t('error.code', { code: e.code })}</p>
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
