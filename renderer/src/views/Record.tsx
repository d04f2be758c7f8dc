/** Record detail: label (preview, reprint), certificate, chain, baseline manifest, step timings, audit chain, sync. */
import { useEffect, useState } from 'react';
import type { CertificateView, RecordDetail } from '../../../core/api.js';
import { LabelPreview } from '../components/LabelPreview.js';
import { station, unwrap } from '../controller.js';
import { formatDate, formatMs } from '../format.js';
import { hasKey, t, type MessageKey } from '../i18n/index.js';
import { uiSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

function Field(props: { label: string; value: string; mono?: boolean; testId?: string }) {
  return (
    <>
      <dt>{props.label}</dt>
      <dd className={props.mono ? 'mono' : undefined} data-testid={props.testId}>
        {props.value}
      </dd>
    </>
  );
}

function join(xs: readonly string[]): string {
  return xs.length ? xs.join(', ') : '–';
}

function Certificate(props: { cert: CertificateView; idPrefix: string }) {
  const c = props.cert;
  const p = props.idPrefix;
  return (
    <dl className="fields">
      <Field label={t('cert.subject')} value={c.subject} testId={`${p}-subject`} />
      <Field label={t('cert.issuer')} value={c.issuer} testId={`${p}-issuer`} />
      <Field label={t('cert.serial')} value={c.serialNumber} mono testId={`${p}-serial`} />
      <Field label={t('cert.validity')} value={`${formatDate(c.notBefore)} – ${formatDate(c.notAfter)}`} />
      <Field label={t('cert.san')} value={join(c.sanUris)} testId={`${p}-san`} />
      <Field label={t('cert.keyUsage')} value={join(c.keyUsage)} />
      <Field label={t('cert.eku')} value={join(c.extendedKeyUsage)} />
      <Field label={t('cert.policy')} value={join(c.policyOids)} />
      <Field label={t('cert.publicKey')} value={c.publicKey} mono />
      <Field label={t('cert.fingerprint')} value={c.sha256} mono testId={`${p}-fingerprint`} />
    </dl>
  );
}

function yesNo(x: boolean | null): string {
  return x === null ? '–' : x ? t('common.yes') : t('common.no');
}

export function Record() {
  const runId = useSlice(uiSlice, (s) => s.recordRunId);
  const [rec, setRec] = useState<RecordDetail | null>(null);
  useEffect(() => {
    if (!runId) return;
    let live = true;
    void station()
      .getRecord({ runId })
      .then((r) => {
        const v = unwrap(r);
        if (live && v) setRec(v);
      });
    return () => {
      live = false;
    };
  }, [runId]);

  const back = (
    <button type="button" className="btn" onClick={() => uiSlice.actions.viewChosen('log')}>
      {t('record.back')}
    </button>
  );
  if (!rec) {
    return (
      <main className="record-view">
        {back}
        <p>{t('common.loading')}</p>
      </main>
    );
  }
  const e = rec.entry;
  return (
    <main className="record-view" aria-labelledby="record-title">
      <div className="view-head">
        <h1 id="record-title">{t('record.title', { serial: e.serialNumber })}</h1>
        {back}
      </div>
      <div className="record-grid">
        <section className="card" aria-labelledby="rec-summary">
          <h2 id="rec-summary">{t('record.summary')}</h2>
          <dl className="fields">
            <Field label={t('log.col.serial')} value={e.serialNumber} testId="rec-serial" />
            <Field label={t('log.col.chip')} value={e.chipId} mono />
            <Field label={t('log.col.workOrder')} value={e.workOrder} />
            <Field label={t('log.col.operator')} value={e.operator} />
            <Field label={t('log.col.outcome')} value={t(`log.outcome.${e.outcome}`)} />
            <Field label={t('record.kind')} value={t(`record.kind.${e.kind}`)} />
            <Field label={t('record.keyMode')} value={rec.keyMode ? t(`record.keyMode.${rec.keyMode}`) : '–'} />
            <Field label={t('record.signature')} value={yesNo(rec.recordSignatureValid)} />
            <Field label={t('record.recordId')} value={e.recordId ?? '–'} mono />
          </dl>
        </section>
        {e.recordId ? (
          <section className="card" aria-labelledby="rec-label">
            <h2 id="rec-label">{t('label.title')}</h2>
            <LabelPreview recordId={e.recordId} />
          </section>
        ) : null}
        <section className="card" aria-labelledby="rec-cert">
          <h2 id="rec-cert">{t('record.certificate')}</h2>
          {rec.certificate ? <Certificate cert={rec.certificate} idPrefix="cert" /> : <p>{t('record.noCert')}</p>}
        </section>
        <section className="card" aria-labelledby="rec-chain">
          <h2 id="rec-chain">{t('record.chain')}</h2>
          <ol className="chain">
            {rec.chain.map((c, i) => (
              <li key={c.sha256}>
                <details>
                  <summary>{c.subject}</summary>
                  <Certificate cert={c} idPrefix={`chain-${i}`} />
                </details>
              </li>
            ))}
          </ol>
        </section>
        <section className="card" aria-labelledby="rec-baseline">
          <h2 id="rec-baseline">{t('record.baseline')}</h2>
          {rec.manifest ? (
            <>
              <p className={rec.manifest.verdict.pass ? 'ok-text' : 'bad-text'}>
                {rec.manifest.verdict.pass ? t('record.verdict.pass') : t('record.verdict.fail')}
              </p>
              <ul>
                {rec.manifest.verdict.violations.map((v, i) => (
                  <li key={`${v.rule}-${i}`} data-rule={v.rule}>
                    <strong>{violationTitle(v.rule)}</strong>
                    {': '}
                    {t('record.violation.values', { expected: v.expected, actual: v.actual })}
                    <details className="error-details">
                      <summary>{t('error.details')}</summary>
                      <p lang="en">{v.message}</p>
                    </details>
                  </li>
                ))}
              </ul>
              <dl className="fields">
                <Field label={t('record.capturedAt')} value={formatDate(rec.manifest.capturedAt)} />
                <Field label={t('record.manifestSignature')} value={yesNo(rec.manifest.signatureValid)} />
              </dl>
              <pre className="json">{JSON.stringify(rec.manifest.measurements, null, 2)}</pre>
            </>
          ) : (
            <p>{t('record.noManifest')}</p>
          )}
        </section>
        <section className="card" aria-labelledby="rec-timings">
          <h2 id="rec-timings">{t('record.timings')}</h2>
          <dl className="fields">
            {Object.entries(rec.timings).map(([k, v]) => (
              <Field key={k} label={hasKey(`step.${k}`) ? t(`step.${k}` as MessageKey) : k} value={formatMs(v)} />
            ))}
          </dl>
        </section>
        <section className="card" aria-labelledby="rec-audit">
          <h2 id="rec-audit">{t('record.audit')}</h2>
          <p className={rec.audit.ok ? 'ok-text' : 'bad-text'}>
            {rec.audit.ok ? t('record.audit.ok', { n: rec.audit.entries }) : t('record.audit.broken')}
          </p>
          {rec.audit.message ? <p>{rec.audit.message}</p> : null}
          <h2>{t('record.sync')}</h2>
          <dl className="fields">
            <Field label={t('record.sync.state')} value={t(`syncState.${rec.sync.state}`)} />
            <Field label={t('record.sync.receipt')} value={rec.sync.receiptId ?? '–'} mono />
            <Field label={t('record.sync.at')} value={formatDate(rec.sync.acknowledgedAt)} />
          </dl>
        </section>
      </div>
    </main>
  );
}

/** A baseline rule in the UI's language (the rule id itself when the catalogue does not know it). */
function violationTitle(rule: string): string {
  const key = `violation.${rule}`;
  return hasKey(key) ? t(key) : rule;
}
