/**
 * The supervisor override confirmation (re-provision or scrap one slot): a modal that requires a reason, then
 * `approveOverride` (audited with the supervisor and the reason). Used by the Overrides view and by a tile whose board
 * lost its identity (`identity-lost`), which offers re-provisioning to a supervisor.
 */
import { useState, type FormEvent } from 'react';
import type { SlotView } from '../../../core/api.js';
import { applySlot, station, unwrap } from '../controller.js';
import { t } from '../i18n/index.js';
import { Dialog, DialogActions } from './Dialog.js';

export type OverrideKind = 'reprovision' | 'scrap';

/** The override asked for: which kind, on which slot. */
export interface PendingOverride {
  readonly kind: OverrideKind;
  readonly slot: SlotView;
}

/**
 * The confirmation dialog of `pending` (closed when null). `onDone` gets the text saying the override was approved;
 * `onClose` is called when the dialog closes (cancelled or confirmed).
 */
export function OverrideDialog(props: {
  pending: PendingOverride | null;
  onClose: () => void;
  onDone?: (message: string) => void;
}) {
  const { pending, onClose, onDone } = props;
  const [reason, setReason] = useState('');
  const close = () => {
    setReason('');
    onClose();
  };
  async function confirm(e: FormEvent) {
    e.preventDefault();
    if (!pending || reason.trim().length < 3) return;
    const r = unwrap(
      await station().approveOverride({ kind: pending.kind, port: pending.slot.port, reason: reason.trim() }),
    );
    if (r) {
      applySlot(r);
      onDone?.(t('override.done', { kind: t(`override.${pending.kind}`), board: pending.slot.label }));
    }
    close();
  }
  return (
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
          <DialogActions
            onCancel={close}
            submit={t('override.confirm')}
            submitClass="btn-danger"
            disabled={reason.trim().length < 3}
          />
        </form>
      ) : null}
    </Dialog>
  );
}
