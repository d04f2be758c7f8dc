/**
 * The persistent red banner while headquarters revokes this station (StationStatus.stationRevoked: the registry's
 * signed station-status answer, or the policy in force):
 * shown on every screen, signed in or not, with the revocation time; it cannot be dismissed (nothing to focus).
 */
import { formatDate } from '../format.js';
import { t } from '../i18n/index.js';
import { sessionSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

export function RevokedBanner() {
  const { status } = useSlice(sessionSlice);
  const r = status?.stationRevoked;
  if (!r) return null;
  return (
    <div className="banner banner-error banner-revoked" role="alert" data-testid="station-revoked">
      <div>
        <p className="error-what">{t('revoked.title')}</p>
        <p data-testid="station-revoked-at">
          {r.policyVersion === null
            ? t('revoked.signed', { time: r.revokedAt ? formatDate(r.revokedAt) : '?' })
            : r.revokedAt
              ? t('revoked.at', { time: formatDate(r.revokedAt), policy: r.policyVersion })
              : t('revoked.noTime', { policy: r.policyVersion })}
        </p>
        <p className="error-action action-call-supervisor">{t('revoked.guidance')}</p>
      </div>
    </div>
  );
}
