/**
 * Station checks (`station doctor` in the HSM & devices view): runs the StationApi `doctor` operation when shown, on
 * the view's Refresh and on Run checks, and lists every check with its status, finding and, when it does not pass,
 * what to do.
 */
import { useCallback, useEffect, useState } from 'react';
import type { DoctorReport, DoctorStatus } from '../../../core/api.js';
import { station, unwrap } from '../controller.js';
import { t } from '../i18n/index.js';

const STATUS_CLASS: Readonly<Record<DoctorStatus, string>> = {
  pass: 'ok-text',
  warn: 'warn-text',
  fail: 'bad-text',
  skipped: 'muted-text',
};

/** The checks; they run again when `refresh` changes (the view's Refresh button) or on Run checks. */
export function DoctorChecks(props: { readonly refresh: number }) {
  const [report, setReport] = useState<DoctorReport | null>(null);
  const [running, setRunning] = useState(false);
  const run = useCallback(() => {
    setRunning(true);
    void station()
      .doctor({})
      .then((r) => {
        const v = unwrap(r);
        if (v) setReport(v);
        setRunning(false);
      });
  }, []);
  useEffect(run, [run, props.refresh]);
  const n = (s: DoctorStatus) => String(report?.checks.filter((c) => c.status === s).length ?? 0);
  return (
    <section className="card doctor" aria-labelledby="doctor-title" aria-busy={running}>
      <div className="view-head">
        <h2 id="doctor-title">{t('doctor.title')}</h2>
        <button type="button" className="btn" onClick={run} disabled={running} data-testid="doctor-run">
          {running ? t('doctor.running') : t('doctor.run')}
        </button>
      </div>
      {report ? (
        <>
          <p className={report.ok ? 'ok-text' : 'bad-text'} data-testid="doctor-counts">
            {t('doctor.counts', { failed: n('fail'), warnings: n('warn'), skipped: n('skipped'), passed: n('pass') })}
          </p>
          <ul className="doctor-checks">
            {report.checks.map((c) => (
              <li
                key={c.id}
                className={`doctor-check doctor-${c.status}`}
                data-testid={`doctor-${c.id}`}
                data-status={c.status}
              >
                <strong className={STATUS_CLASS[c.status]}>{t(`doctor.status.${c.status}`)}</strong>{' '}
                <span>{t(`doctor.check.${c.id}`)}</span>
                <p>{c.summary}</p>
                {c.action && c.status !== 'pass' ? (
                  <p className="mono doctor-action">{t('doctor.action', { action: c.action })}</p>
                ) : null}
              </li>
            ))}
          </ul>
        </>
      ) : (
        <p>{running ? t('doctor.running') : t('common.loading')}</p>
      )}
    </section>
  );
}
