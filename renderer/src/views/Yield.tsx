/** Yield: first-pass yield, failures by cause, cycle-time histogram, boards per hour (SVG charts). */
import { useEffect, useState, type FormEvent } from 'react';
import type { YieldView } from '../../../core/api.js';
import { BarChart } from '../components/BarChart.js';
import { station, unwrap } from '../controller.js';
import { formatMs, formatPercent } from '../format.js';
import { t } from '../i18n/index.js';
import { sessionSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

export function Yield() {
  const current = useSlice(sessionSlice, (s) => s.workOrder?.id ?? '');
  const [wo, setWo] = useState(current);
  const [query, setQuery] = useState(current);
  const [y, setY] = useState<YieldView | null>(null);
  useEffect(() => {
    let live = true;
    void station()
      .getYield(query ? { workOrder: query } : {})
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
    setQuery(wo.trim());
  }
  return (
    <main className="yield-view" aria-labelledby="yield-title">
      <div className="view-head">
        <h1 id="yield-title">{t('yield.title')}</h1>
        <form onSubmit={submit} className="inline-form">
          <label htmlFor="yield-wo">{t('log.workOrder')}</label>
          <input id="yield-wo" className="input" value={wo} onChange={(e) => setWo(e.target.value)} />
          <button type="submit" className="btn">
            {t('common.apply')}
          </button>
        </form>
      </div>
      {y ? (
        <>
          <div className="kpis">
            <div className="kpi">
              <span className="kpi-value" data-testid="fpy">
                {formatPercent(y.firstPassYield)}
              </span>
              <span className="kpi-label">{t('yield.fpy')}</span>
            </div>
            <div className="kpi">
              <span className="kpi-value">{String(y.boards)}</span>
              <span className="kpi-label">{t('yield.boards')}</span>
            </div>
            <div className="kpi">
              <span className="kpi-value">{String(y.provisioned)}</span>
              <span className="kpi-label">{t('yield.provisioned')}</span>
            </div>
            <div className="kpi">
              <span className="kpi-value">{formatMs(y.cycleTime.p50)}</span>
              <span className="kpi-label">{t('yield.p50')}</span>
            </div>
            <div className="kpi">
              <span className="kpi-value">{formatMs(y.cycleTime.p95)}</span>
              <span className="kpi-label">{t('yield.p95')}</span>
            </div>
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
