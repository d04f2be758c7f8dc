/**
 * Station log: search by serial or chip, filter, page with the server's keyset cursor. A failed run's or a refusal's
 * error is said in the UI's language from its code and params (i18n/errors.ts), the code beside it.
 */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { LogEntry, LogPage, LogQuery } from '../../../core/api.js';
import { station, unwrap } from '../controller.js';
import { download } from '../download.js';
import { formatDate, formatMs } from '../format.js';
import { localiseError } from '../i18n/errors.js';
import { t, useLanguage } from '../i18n/index.js';
import { uiSlice } from '../store/slices.js';

const PAGE = 25;

interface Filters {
  text: string;
  workOrder: string;
  operator: string;
  outcome: '' | 'provisioned' | 'failed' | 'in-progress' | 'refused';
  from: string;
  to: string;
}
const EMPTY: Filters = { text: '', workOrder: '', operator: '', outcome: '', from: '', to: '' };

/** datetime-local value -> ISO (UTC) or undefined. */
function iso(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function toQuery(f: Filters, cursor: string | undefined): LogQuery {
  const q: LogQuery = { limit: PAGE };
  if (f.text.trim()) q.text = f.text.trim();
  if (f.workOrder.trim()) q.workOrder = f.workOrder.trim();
  if (f.operator.trim()) q.operator = f.operator.trim();
  if (f.outcome) q.outcome = f.outcome;
  const from = iso(f.from);
  const to = iso(f.to);
  if (from) q.from = from;
  if (to) q.to = to;
  if (cursor) q.cursor = cursor;
  return q;
}

/** The entry's error in the UI's language (from code + params); nothing when the UI cannot say it (unknown code). */
function LogError(props: { entry: LogEntry }) {
  const { errorCode: code, errorParams: params } = props.entry;
  const lang = useLanguage();
  if (!code) return null;
  const l = localiseError({ code, message: '', ...(params ? { params } : {}) }, lang);
  if (!l.localised) return null;
  return (
    <span className="log-error" data-code={code}>
      {l.text}
    </span>
  );
}

// Kept across visits so "back" from a record returns to the same page.
let remembered: { filters: Filters; cursors: (string | undefined)[] } = { filters: EMPTY, cursors: [undefined] };

export function Log() {
  const [draft, setDraft] = useState<Filters>(remembered.filters);
  const [filters, setFilters] = useState<Filters>(remembered.filters);
  const [cursors, setCursors] = useState<(string | undefined)[]>(remembered.cursors);
  const [page, setPage] = useState<LogPage | null>(null);
  const [busy, setBusy] = useState(false);

  const [exported, setExported] = useState('');
  async function exportCsv() {
    const { limit: _limit, cursor: _cursor, ...filter } = toQuery(filters, undefined);
    const r = unwrap(await station().exportReport({ report: 'log', ...filter }));
    if (r) {
      download(r.fileName, r.content, 'text/csv');
      setExported(t('report.exported', { rows: r.rows, file: r.fileName }));
    }
  }

  const load = useCallback(async (f: Filters, cursor: string | undefined) => {
    setBusy(true);
    const r = unwrap(await station().queryLog(toQuery(f, cursor)));
    setBusy(false);
    if (r) setPage(r);
  }, []);

  useEffect(() => {
    remembered = { filters, cursors };
    void load(filters, cursors[cursors.length - 1]);
  }, [filters, cursors, load]);

  function search(e: FormEvent) {
    e.preventDefault();
    setFilters({ ...draft });
    setCursors([undefined]);
  }
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });

  return (
    <main className="log-view" aria-labelledby="log-title">
      <h1 id="log-title">{t('log.title')}</h1>
      <form className="filters" onSubmit={search} role="search">
        <label>
          {t('log.text')}
          <input className="input" id="log-text" value={draft.text} onChange={set('text')} autoFocus />
        </label>
        <label>
          {t('log.workOrder')}
          <input className="input" value={draft.workOrder} onChange={set('workOrder')} />
        </label>
        <label>
          {t('log.operator')}
          <input className="input" value={draft.operator} onChange={set('operator')} />
        </label>
        <label>
          {t('log.outcome')}
          <select className="input" value={draft.outcome} onChange={set('outcome')}>
            <option value="">{t('log.outcome.any')}</option>
            <option value="provisioned">{t('log.outcome.provisioned')}</option>
            <option value="failed">{t('log.outcome.failed')}</option>
            <option value="in-progress">{t('log.outcome.in-progress')}</option>
            <option value="refused">{t('log.outcome.refused')}</option>
          </select>
        </label>
        <label>
          {t('log.from')}
          <input className="input" type="datetime-local" value={draft.from} onChange={set('from')} />
        </label>
        <label>
          {t('log.to')}
          <input className="input" type="datetime-local" value={draft.to} onChange={set('to')} />
        </label>
        <button type="submit" className="btn btn-primary">
          {t('log.search')}
        </button>
        <button type="button" className="btn" onClick={() => void exportCsv()}>
          {t('report.exportCsv')}
        </button>
      </form>
      <p role="status">{exported}</p>
      <p className="log-total" aria-live="polite">
        {busy ? t('common.loading') : t('log.total', { total: page?.total ?? 0, page: cursors.length })}
      </p>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">{t('log.col.serial')}</th>
            <th scope="col">{t('log.col.chip')}</th>
            <th scope="col">{t('log.col.workOrder')}</th>
            <th scope="col">{t('log.col.operator')}</th>
            <th scope="col">{t('log.col.outcome')}</th>
            <th scope="col">{t('log.col.step')}</th>
            <th scope="col">{t('log.col.started')}</th>
            <th scope="col">{t('log.col.duration')}</th>
            <th scope="col">{t('log.col.sync')}</th>
            <th scope="col">{t('log.col.open')}</th>
          </tr>
        </thead>
        <tbody>
          {(page?.items ?? []).map((e) => (
            <tr key={e.runId} className={`outcome-${e.outcome}`} data-run={e.runId}>
              <td>{e.serialNumber}</td>
              <td className="mono">{e.chipId.slice(0, 16)}</td>
              <td>{e.workOrder}</td>
              <td>{e.operator}</td>
              <td>
                {t(`log.outcome.${e.outcome}`)}
                {e.errorCode ? ` (${e.errorCode})` : ''}
                {e.attempts && e.attempts > 1 ? ` ${t('log.attempts', { n: e.attempts })}` : ''}
                <LogError entry={e} />
              </td>
              <td>{t(`step.${e.step}`)}</td>
              <td>{formatDate(e.startedAt)}</td>
              <td>{formatMs(e.durationMs)}</td>
              <td>{t(`syncState.${e.syncState}`)}</td>
              <td>
                {e.outcome === 'refused' ? (
                  '–'
                ) : (
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={t('log.openRecord', { serial: e.serialNumber })}
                    onClick={() => uiSlice.actions.recordOpened(e.runId)}
                  >
                    {t('log.open')}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="pager">
        <button
          type="button"
          className="btn"
          disabled={cursors.length <= 1}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          {t('log.prev')}
        </button>
        <button
          type="button"
          className="btn"
          disabled={!page?.nextCursor}
          onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}
        >
          {t('log.next')}
        </button>
      </div>
    </main>
  );
}
