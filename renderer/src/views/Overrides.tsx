/** Supervisor overrides (re-provision, scrap) with a confirmation dialog that requires a reason. */
import { useState } from 'react';
import type { SlotView } from '../../../core/api.js';
import { OverrideDialog, type PendingOverride } from '../components/OverrideDialog.js';
import { t } from '../i18n/index.js';
import { slotsSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

export function Overrides() {
  const { byPort, order } = useSlice(slotsSlice);
  const slots = order
    .map((p) => byPort[p])
    .filter((x): x is SlotView => x !== undefined)
    .sort((a, b) => a.label.localeCompare(b.label, undefined, { numeric: true }));
  const [pending, setPending] = useState<PendingOverride | null>(null);
  const [message, setMessage] = useState('');
  return (
    <main className="overrides-view" aria-labelledby="ov-title">
      <h1 id="ov-title">{t('override.title')}</h1>
      <p>{t('override.explain')}</p>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">{t('override.board')}</th>
            <th scope="col">{t('log.col.serial')}</th>
            <th scope="col">{t('override.state')}</th>
            <th scope="col">{t('override.actions')}</th>
          </tr>
        </thead>
        <tbody>
          {slots.map((s) => (
            <tr key={s.port}>
              <td>{s.label}</td>
              <td>{s.serialNumber ?? '–'}</td>
              <td>{t(`slot.state.${s.state}`)}</td>
              <td className="row-actions">
                <button
                  type="button"
                  className="btn btn-small"
                  onClick={() => setPending({ kind: 'reprovision', slot: s })}
                >
                  {t('override.reprovision')}
                </button>
                <button
                  type="button"
                  className="btn btn-small btn-danger"
                  onClick={() => setPending({ kind: 'scrap', slot: s })}
                >
                  {t('override.scrap')}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p role="status">{message}</p>
      <OverrideDialog pending={pending} onClose={() => setPending(null)} onDone={setMessage} />
    </main>
  );
}
