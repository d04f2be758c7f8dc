/** Supervisor confirmation: a supervisor enters their id and PIN to elevate this session. */
import { useState, type FormEvent } from 'react';
import type { ApiError } from '../../../core/api.js';
import { Dialog, DialogActions } from '../components/Dialog.js';
import { ErrorText } from '../components/ErrorText.js';
import { elevate } from '../controller.js';
import { t } from '../i18n/index.js';
import { uiSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

export function ElevateDialog() {
  const open = useSlice(uiSlice, (s) => s.elevateOpen);
  const [operatorId, setOperatorId] = useState('');
  const [pin, setPin] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const close = () => {
    setPin('');
    setError(null);
    uiSlice.actions.elevationClosed();
  };
  async function submit(e: FormEvent) {
    e.preventDefault();
    const r = await elevate({ operatorId: operatorId.trim(), pin });
    setPin('');
    if (r) setError(r);
    else close();
  }
  return (
    <Dialog open={open} onClose={close} labelledBy="elevate-title">
      <form onSubmit={(e) => void submit(e)} className="dialog-body">
        <h2 id="elevate-title">{t('elevate.title')}</h2>
        <p>{t('elevate.explain')}</p>
        {error ? <ErrorText error={error} /> : null}
        <label htmlFor="sup-id">{t('elevate.supervisorId')}</label>
        <input
          id="sup-id"
          className="input"
          autoFocus
          autoComplete="off"
          value={operatorId}
          onChange={(e) => setOperatorId(e.target.value)}
        />
        <label htmlFor="sup-pin">{t('login.pin')}</label>
        <input
          id="sup-pin"
          className="input"
          type="password"
          inputMode="numeric"
          autoComplete="off"
          value={pin}
          onChange={(e) => setPin(e.target.value)}
        />
        <DialogActions onCancel={close} submit={t('elevate.submit')} submitClass="btn-primary" />
      </form>
    </Dialog>
  );
}
