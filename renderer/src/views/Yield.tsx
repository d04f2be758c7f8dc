/** Yield: first-pass yield, failures by cause, cycle-time histogram, boards per hour (SVG charts). */
import { useEffect, useState, type ChangeEvent, type FormEvent } from 'react';
import type { YieldQuery, YieldView } from '../../../core/api.js';
import { BarChart } from '../components/BarChart.js';
import { station, unwrap } from '../controller.js';
import { download } from '../download.js';
import { formatMs, formatPercent } from '../format.js';
import { t } from '../i18n/index.js';
import { sessionSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

/** A date input value (YYYY-MM-DD, local day) as the ISO instant its day starts (from) or ends (to), or undefined. */
function dayBound(day: string, end: boolean): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined;
  const d = new Date(`${day}T00:00:00`);
  if (Number.isNaN(d.getTime())) return undefined;
  if (end) d.setDate(d.getDate() + 1);
  return new Date(d.getTime() - (end ? 1 : 0)).toISOString();
}

interface YieldFilter {
  workOrder: string;
  from: string;
  to: string;
}

function toQuery(f: YieldFilter): YieldQuery {
  const q: YieldQuery = {};
  if (f.workOrder) q.workOrder = f.workOrder;
  const from = dayBound(f.from, false);
  const to = dayBound(f.to, true);
  if (from) q.from = from;
  if (to) q.to = to;
  return q;
}

/** One figure of the Yield view with its label. */
function Kpi(props: { readonly value: string; readonly label: string; readonly testId?: string }) {
  return (
    <div className="kpi">
      <span className="kpi-value" data-testid={props.testId}>
        {props.value}
      </span>
      <span className="kpi-label">{props.label}</span>
    </div>
  );
}

export function Yield() {
  const current = useSlice(sessionSlice, (s) => s.workOrder?.id ?? '');
  const [draft, setDraft] = useState<YieldFilter>({ workOrder: current, from: '', to: '' });
  const [query, setQuery] = useState<YieldFilter>({ workOrder: current, from: '', to: '' });
  const [y, setY] = useState<YieldView | null>(null);
  const [exported, setExported] = useState('');
  useEffect(() => {
    let live = true;
    void station()
      .getYield(toQuery(query))
      .then((r) => {
        const v = unwrap(r);
        if (live && v) setY(v);
      });
    return () => {
      live = false;
    };
  }, [query]);
  function submit(e: FormEvent) {
    e.preventDefault();
    setQuery({ ...draft, workOrder: draft.workOrder.trim() });
  }
  async function exportCsv() {
    const r = unwrap(await station().exportReport({ report: 'yield', ...toQuery(query) }));
    if (r) {
      download(r.fileName, r.content, 'text/csv');
      setExported(t('report.exported', { rows: r.rows, file: r.fileName }));
    }
  }
  const set = (k: keyof YieldFilter) => (e: ChangeEvent<HTMLInputElement>) =>
    setDraft({ ...draft, [k]: e.target.value });
  return (
    <main className="yield-view" aria-labelledby="yield-title">
      <div className="view-head">
        <h1 id="yield-title">{t('yield.title')}</h1>
        <form onSubmit={submit} className="inline-form">
          <label htmlFor="yield-wo">{t('log.workOrder')}</label>
          <input id="yield-wo" className="input" value={draft.workOrder} onChange={set('workOrder')} />
          <label htmlFor="yield-from">{t('log.from')}</label>
          <input id="yield-from" className="input" type="date" value={draft.from} onChange={set('from')} />
          <label htmlFor="yield-to">{t('log.to')}</label>
          <input id="yield-to" className="input" type="date" value={draft.to} onChange={set('to')} />
          <button type="submit" className="btn">
            {t('common.apply')}
          </button>
          <button type="button" className="btn" onClick={() => void exportCsv()}>
            {t('report.exportCsv')}
          </button>
        </form>
      </div>
      <p role="status">{exported}</p>
      {y ? (
        <>
          <div className="kpis">
            <Kpi value={formatPercent(y.firstPassYield)} label={t('yield.fpy')} testId="fpy" />
            <Kpi value={String(y.boards)} label={t('yield.boards')} />
            <Kpi value={String(y.provisioned)} label={t('yield.provisioned')} />
            <Kpi value={String(y.refused)} label={t('yield.refused')} testId="refused" />
            <Kpi value={formatMs(y.cycleTime.p50)} label={t('yield.p50')} />
            <Kpi value={formatMs(y.cycleTime.p95)} label={t('yield.p95')} />
          </div>
          <div className="charts">
            <section className="card">
              <h2>{t('yield.failures')}</h2>
              {y.failuresByCause.length ? (
                <BarChart
                  title={t('yield.failures')}
                  bars={y.failuresByCause.map((f) => ({ label: f.code, value: f.count }))}
                />
              ) : (
                <p>{t('yield.noFailures')}</p>
              )}
            </section>
            <section className="card">
              <h2>{t('yield.histogram')}</h2>
              <BarChart
                title={t('yield.histogram')}
                bars={y.cycleTime.histogram.map((b) => ({ label: formatMs(b.fromMs), value: b.count }))}
              />
            </section>
            <section className="card">
              <h2>{t('yield.perHour')}</h2>
              <BarChart
                title={t('yield.perHour')}
                bars={y.boardsPerHour.map((b) => ({ label: b.hour.slice(11, 16) || b.hour, value: b.count }))}
              />
            </section>
          </div>
        </>
      ) : (
        <p>{t('common.loading')}</p>
      )}
    </main>
  );
}
