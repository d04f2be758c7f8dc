/** Sync: queue counts, last receipt, Sync now, Export bundle (download), Import receipt (file). */
import { useEffect, useState, type ChangeEvent } from 'react';
import { station, unwrap } from '../controller.js';
import { download } from '../download.js';
import { formatDate } from '../format.js';
import { localiseError } from '../i18n/errors.js';
import { language, t } from '../i18n/index.js';
import { syncSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

export function Sync() {
  const view = useSlice(syncSlice, (s) => s.view);
  const [message, setMessage] = useState('');
  useEffect(() => {
    void station()
      .getSync({})
      .then((r) => {
        const v = unwrap(r);
        if (v) syncSlice.actions.syncUpdated(v);
      });
  }, []);
  async function syncNow() {
    const v = unwrap(await station().syncNow({}));
    if (v) {
      syncSlice.actions.syncUpdated(v);
      setMessage(t('sync.done'));
    }
  }
  async function exportBundle() {
    const v = unwrap(await station().exportBundle({}));
    if (v) {
      download(v.fileName, v.content);
      setMessage(t('sync.exported', { count: v.count, file: v.fileName }));
    }
  }
  async function importReceipt(e: ChangeEvent<HTMLInputElement>) {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (!file) return;
    const content = await file.text();
    const v = unwrap(await station().importReceipt({ fileName: file.name, content }));
    if (v) {
      setMessage(t('sync.imported', { marked: v.marked, already: v.alreadySynced, unknown: v.unknown }));
      const s = unwrap(await station().getSync({}), true);
      if (s) syncSlice.actions.syncUpdated(s);
    }
  }
  return (
    <main className="sync-view" aria-labelledby="sync-title">
      <h1 id="sync-title">{t('sync.title')}</h1>
      {view ? (
        <>
          <div className="kpis">
            {(['pending', 'sent', 'acknowledged', 'failed'] as const).map((k) => (
              <div className={`kpi kpi-${k}`} key={k}>
                <span className="kpi-value" data-testid={`sync-${k}`}>
                  {String(view[k])}
                </span>
                <span className="kpi-label">{t(`syncState.${k}`)}</span>
              </div>
            ))}
          </div>
          <dl className="fields card">
            <dt>{t('sync.registry')}</dt>
            <dd>{view.registryUrl ?? t('sync.notConfigured')}</dd>
            <dt>{t('sync.reachable')}</dt>
            <dd>{view.reachable === null ? '–' : view.reachable ? t('common.yes') : t('common.no')}</dd>
            <dt>{t('sync.lastReceipt')}</dt>
            <dd className="mono">
              {view.lastReceipt
                ? t('sync.receipt', {
                    id: view.lastReceipt.receiptId,
                    at: formatDate(view.lastReceipt.at),
                    count: view.lastReceipt.count,
                  })
                : '–'}
            </dd>
            <dt>{t('sync.lastError')}</dt>
            <dd data-testid="sync-last-error">{view.lastError ? <LastError text={view.lastError} /> : '–'}</dd>
            <dt>{t('sync.nextAttempt')}</dt>
            <dd>{formatDate(view.nextAttemptAt)}</dd>
          </dl>
          {view.failingBatches.length > 0 && (
            <section className="card" aria-labelledby="sync-failing-title">
              <h2 id="sync-failing-title">{t('sync.failingTitle')}</h2>
              <p>{t('sync.failingHelp')}</p>
              <table className="table" data-testid="sync-failing">
                <thead>
                  <tr>
                    <th scope="col">{t('sync.batch')}</th>
                    <th scope="col">{t('sync.records')}</th>
                    <th scope="col">{t('sync.attempts')}</th>
                    <th scope="col">{t('sync.reason')}</th>
                    <th scope="col">{t('sync.lastAttempt')}</th>
                  </tr>
                </thead>
                <tbody>
                  {view.failingBatches.map((b) => (
                    <tr key={b.batchId}>
                      <td className="mono">{b.batchId}</td>
                      <td>{String(b.records)}</td>
                      <td>{String(b.attempts)}</td>
                      <td>
                        <span className="mono">{b.code}</span> {localiseError(b, language()).text}
                      </td>
                      <td>{formatDate(b.at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
          )}
        </>
      ) : (
        <p>{t('common.loading')}</p>
      )}
      <div className="actions">
        <button type="button" className="btn btn-primary" onClick={() => void syncNow()}>
          {t('sync.now')}
        </button>
        <button type="button" className="btn" onClick={() => void exportBundle()}>
          {t('sync.export')}
        </button>
        <label className="file-label" htmlFor="receipt-file">
          {t('sync.import')}
        </label>
        <input
          id="receipt-file"
          className="file-input"
          type="file"
          accept=".json,application/json"
          onChange={(e) => void importReceipt(e)}
        />
      </div>
      <p role="status">{message}</p>
    </main>
  );
}

/**
 * The sync service's last error, `CODE: message`: said in the UI's language from its code (i18n/errors.ts) with the
 * code, the station's English message under "Details"; text without a known code as it is.
 */
function LastError(props: { text: string }) {
  const m = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(props.text);
  if (!m) return <>{props.text}</>;
  const l = localiseError({ code: m[1]!, message: m[2]! }, language());
  if (!l.localised) return <>{props.text}</>;
  return (
    <>
      {l.text} <span className="mono">{t('sync.lastErrorCode', { code: m[1]! })}</span>
      <details className="error-details">
        <summary>{t('error.details')}</summary>
        <p lang="en">{m[2]}</p>
      </details>
    </>
  );
}
