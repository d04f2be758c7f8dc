/** Choose or scan a work order. */
import { useState, type FormEvent } from 'react';
import type { ApiError } from '../../../core/api.js';
import { ErrorText } from '../components/ErrorText.js';
import { selectWorkOrder } from '../controller.js';
import { t } from '../i18n/index.js';
import { sessionSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

export function WorkOrders() {
  const workOrders = useSlice(sessionSlice, (s) => s.workOrders);
  const [scan, setScan] = useState('');
  const [error, setError] = useState<ApiError | null>(null);

  async function choose(id: string) {
    setError(await selectWorkOrder(id));
  }
  function onScan(e: FormEvent) {
    e.preventDefault();
    const id = scan.trim();
    setScan('');
    if (id) void choose(id);
  }

  return (
    <main className="work-orders" aria-labelledby="wo-title">
      <h1 id="wo-title">{t('wo.title')}</h1>
      {error ? (
        <div className="banner banner-error" role="alert">
          <ErrorText error={error} />
        </div>
      ) : null}
      <form className="card" onSubmit={onScan}>
        <label htmlFor="wo-scan">{t('wo.scan')}</label>
        <input
          id="wo-scan"
          className="input input-large"
          autoFocus
          autoComplete="off"
          value={scan}
          onChange={(e) => setScan(e.target.value)}
        />
      </form>
      <ul className="wo-list">
        {workOrders.map((w) => (
          <li key={w.id}>
            <button type="button" className="btn wo-button" data-wo={w.id} onClick={() => void choose(w.id)}>
              <span className="wo-id">{w.id}</span>
              <span className="wo-product">{w.product}</span>
              <span className="wo-count">{t('wo.progress', { done: w.provisioned, total: w.quantity })}</span>
            </button>
          </li>
        ))}
      </ul>
      {workOrders.length === 0 ? <p>{t('wo.none')}</p> : null}
    </main>
  );
}
