/** Supervisor overrides (re-provision, scrap) with a confirmation dialog that requires a reason. */
import { useState, type FormEvent } from 'react';
import type { SlotView } from '../../../core/api.js';
import { Dialog } from '../components/Dialog.js';
import { applySlot, station, unwrap } from '../controller.js';
import { t } from '../i18n/index.js';
import { slotsSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

type Kind = 'reprovision' | 'scrap';

export function Overrides() {
  const { byPort, order } = useSlice(slotsSlice);
  const slots = order
    .map((p) => byPort[p])
    .filter((x): x is SlotView => x !== undefined)
    .sort((a, b) => a.label.localeCompare(b.label, undefined, { numeric: true }));
  const [pending, setPending] = useState<{ kind: Kind; slot: SlotView } | null>(null);
  const [reason, setReason] = useState('');
  const [message, setMessage] = useState('');
  const close = () => {
    setPending(null);
    setReason('');
  };
  async function confirm(e: FormEvent) {
    e.preventDefault();
    if (!pending || reason.trim().length < 3) return;
    const r = unwrap(
      await station().approveOverride({ kind: pending.kind, port: pending.slot.port, reason: reason.trim() }),
    );
    if (r) {
      applySlot(r);
      setMessage(t('override.done', { kind: t(`override.${pending.kind}`), board: pending.slot.label }));
    }
    close();
  }
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
      <Dialog open={pending !== null} onClose={close} labelledBy="ov-confirm-title">
        {pending ? (
          <form className="dialog-body" onSubmit={(e) => void confirm(e)}>
            <h2 id="ov-confirm-title">
              {t('override.confirmTitle', { kind: t(`override.${pending.kind}`), board: pending.slot.label })}
            </h2>
            <label htmlFor="ov-reason">{t('override.reason')}</label>
            <textarea
              id="ov-reason"
              className="input"
              autoFocus
              required
              minLength={3}
              maxLength={500}
              value={reason}
              onChange={(e) => setReason(e.target.value)}
            />
            <div className="dialog-actions">
              <button type="button" className="btn" onClick={close}>
                {t('common.cancel')}
              </button>
              <button type="submit" className="btn btn-danger" disabled={reason.trim().length < 3}>
                {t('override.confirm')}
              </button>
            </div>
          </form>
        ) : null}
      </Dialog>
    </main>
  );
}
