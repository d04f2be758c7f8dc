/** A modal dialog on the native <dialog> element: focus is trapped, Escape closes it; its Cancel / submit row. */
import { useEffect, useRef, type ReactNode } from 'react';
import { t } from '../i18n/index.js';

export function Dialog(props: { open: boolean; onClose: () => void; labelledBy: string; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  const { open, onClose } = props;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    const onCancel = (e: Event) => {
      e.preventDefault();
      onClose();
    };
    d.addEventListener('cancel', onCancel);
    return () => d.removeEventListener('cancel', onCancel);
  }, [onClose]);
  return (
    <dialog ref={ref} className="dialog" aria-labelledby={props.labelledBy}>
      {open ? props.children : null}
    </dialog>
  );
}

/** The buttons of a dialog's form: Cancel (calls `onCancel`) and the submit button (`submitClass`, e.g. btn-danger). */
export function DialogActions(props: {
  onCancel: () => void;
  submit: string;
  submitClass: string;
  disabled?: boolean;
}) {
  return (
    <div className="dialog-actions">
      <button type="button" className="btn" onClick={props.onCancel}>
        {t('common.cancel')}
      </button>
      <button type="submit" className={`btn ${props.submitClass}`} disabled={props.disabled === true}>
        {props.submit}
      </button>
    </div>
  );
}
