/**
 * The slots view: one large tile per connected board with the live step strip, elapsed time and a
 * large PASS / FAIL with what happened and what to do next; a board that lost the identity it got here shows
 * IDENTITY LOST (neither PASS nor FAIL: set it aside), and offers a supervisor to re-provision it.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { STEPS } from '../../../core/model.js';
import type { SlotView } from '../../../core/api.js';
import { ErrorText } from '../components/ErrorText.js';
import { ReprintResult, useReprint } from '../components/LabelPreview.js';
import { OverrideDialog, type PendingOverride } from '../components/OverrideDialog.js';
import { hasSupervisorRights, retrySlot, scanSlot } from '../controller.js';
import { hasKey, t } from '../i18n/index.js';
import { formatMs } from '../format.js';
import { sessionSlice, slotsSlice } from '../store/slices.js';
import { useSlice } from '../store/slice.js';

function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, [active]);
  return now;
}

function elapsed(slot: SlotView, now: number): number {
  if (slot.state === 'running' && slot.startedAt) {
    const start = Date.parse(slot.startedAt);
    if (Number.isFinite(start)) return Math.max(slot.elapsedMs, now - start);
  }
  return slot.elapsedMs;
}

function stateText(state: SlotView['state']): string {
  const key = `slot.state.${state}`;
  return hasKey(key) ? t(key) : state;
}

/** The label after PASS: printing, printed, or not printed (the PASS stands) with its error and Reprint. */
function TileLabel(props: { label: NonNullable<SlotView['boardLabel']> }) {
  const l = props.label;
  const { busy, printed, run } = useReprint(l.recordId);
  if (l.state !== 'failed')
    return (
      <p className="tile-note tile-label-state" data-label-state={l.state}>
        {l.state === 'printing' ? t('label.printing') : t('label.printed', { target: l.target ?? '' })}
      </p>
    );
  return (
    <div className="tile-label-failed" data-label-state="failed">
      <p className="bad-text">{t('label.notPrinted')}</p>
      {printed ? null : l.error ? <ErrorText error={l.error} /> : null}
      <button type="button" className="btn" disabled={busy} onClick={run}>
        {busy ? t('label.printing') : t('label.reprint')}
      </button>
      <ReprintResult printed={printed} />
    </div>
  );
}

/** The scan fields of the slots still waiting, in tile order: after a scan, focus moves to the next one. */
function focusNextScan(from: string): void {
  const fields = [...document.querySelectorAll<HTMLInputElement>('input[data-scan-port]')];
  const i = fields.findIndex((f) => f.dataset['scanPort'] === from);
  const next = [...fields.slice(i + 1), ...fields.slice(0, Math.max(0, i))].find((f) => f.dataset['waiting'] === '1');
  next?.focus();
}

/**
 * Scan-in for one slot: a keyboard-wedge scanner types the board's barcode into the focused field and Enter. The
 * field names its slot (label and port), so with many boards the operator sees which board a scan goes to.
 */
function ScanField(props: { slot: SlotView }) {
  const s = props.slot;
  const [value, setValue] = useState('');
  const ref = useRef<HTMLInputElement>(null);
  const waiting = s.awaitingScan === true;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const serial = value.trim();
    if (!serial) return;
    setValue('');
    if (await scanSlot(s.port, serial)) focusNextScan(s.port);
  };
  return (
    <form className="tile-scan" onSubmit={(e) => void submit(e)}>
      <label>
        {waiting ? t('slot.scanPrompt', { slot: s.label }) : t('slot.scanLabel', { slot: s.label })}
        <input
          ref={ref}
          className="input"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          data-scan-port={s.port}
          data-waiting={waiting ? '1' : '0'}
          autoComplete="off"
          spellCheck={false}
          aria-label={t('slot.scanAria', { slot: s.label, port: s.port })}
        />
      </label>
      {s.scan ? <p className="tile-scanned">{t('slot.scanned', { serial: s.scan })}</p> : null}
    </form>
  );
}

/**
 * A failed rework that erased the board queued the revocation of its previous certificate (error details
 * `revocationQueued`, docs/lifecycle.md "Failed rework"): that certificate's serial, or null.
 */
function revokedSerial(s: SlotView): string | null {
  const q = s.error?.details?.['revocationQueued'];
  if (typeof q !== 'object' || q === null) return null;
  const serial = (q as { certificateSerial?: unknown }).certificateSerial;
  return typeof serial === 'string' ? serial : null;
}

/** The large verdict of a finished tile: PASS (green), FAIL (red), or IDENTITY LOST (amber, its own icon). */
function Verdict(props: { result: 'pass' | 'fail' | 'lost' }) {
  const r = props.result;
  if (r === 'lost')
    return (
      <div className="verdict verdict-lost">
        <span className="verdict-icon" aria-hidden="true" />
        {t('slot.lost')}
      </div>
    );
  return <div className={`verdict verdict-${r}`}>{r === 'pass' ? t('slot.pass') : t('slot.fail')}</div>;
}

function Tile(props: {
  slot: SlotView;
  now: number;
  scanIn: boolean;
  supervisor: boolean;
  onReprovision: (s: SlotView) => void;
}) {
  const s = props.slot;
  const canScan = props.scanIn && (s.state === 'connected' || s.state === 'fail' || s.state === 'interrupted');
  const lost = s.state === 'identity-lost';
  const result =
    s.state === 'pass' || s.state === 'already' ? 'pass' : s.state === 'fail' ? 'fail' : lost ? 'lost' : null;
  return (
    <li className={`tile tile-${s.state}`} data-port={s.port} data-state={s.state} aria-label={s.label}>
      <div className="tile-head">
        <span className="tile-label">{s.label}</span>
        <span className="tile-serial">{s.serialNumber ?? s.chipId ?? ''}</span>
        <span className="tile-elapsed">{formatMs(elapsed(s, props.now))}</span>
      </div>
      <ol className={`steps steps-${s.steps.length || STEPS.length}`} aria-label={t('slot.steps')}>
        {(s.steps.length ? s.steps.map((x) => x.step) : STEPS).map((step) => {
          const st = s.steps.find((x) => x.step === step);
          const status = st?.status ?? 'pending';
          const stepName = t(`step.${step}`);
          return (
            <li
              key={step}
              className={`step step-${status}`}
              title={t('slot.stepTitle', { step: stepName, status: t(`stepStatus.${status}`) })}
            >
              <span className="step-name">{stepName}</span>
            </li>
          );
        })}
      </ol>
      {result ? (
        <Verdict result={result} />
      ) : (
        <div className="tile-state">
          {stateText(s.state)}
          {s.currentStep ? <span className="tile-step">{t(`step.${s.currentStep}`)}</span> : null}
        </div>
      )}
      {s.note && s.state === 'running' ? <p className="tile-substep">{s.note}</p> : null}
      {s.state === 'already' ? <p className="tile-note">{t('slot.already')}</p> : null}
      {s.state === 'pass' && s.boardLabel ? <TileLabel key={s.boardLabel.recordId} label={s.boardLabel} /> : null}
      {s.error && (s.state === 'fail' || s.state === 'interrupted' || lost) ? <ErrorText error={s.error} /> : null}
      {lost && !props.supervisor ? <p className="tile-note tile-lost-hint">{t('slot.lostHint')}</p> : null}
      {lost && props.supervisor ? (
        <button type="button" className="btn btn-reprovision" onClick={() => props.onReprovision(s)}>
          {t('slot.reprovision')}
        </button>
      ) : null}
      {revokedSerial(s) ? (
        <p className="tile-revocation" role="note">
          {t('slot.revocationQueued', { serial: revokedSerial(s)! })}
        </p>
      ) : null}
      {canScan ? <ScanField slot={s} /> : null}
      {(s.state === 'fail' || s.state === 'interrupted') && s.canRetry ? (
        <button type="button" className="btn btn-primary" onClick={() => void retrySlot(s.port)}>
          {t('slot.retry')}
        </button>
      ) : null}
    </li>
  );
}

export function Slots() {
  const { byPort, order } = useSlice(slotsSlice);
  const workOrder = useSlice(sessionSlice, (s) => s.workOrder);
  const supervisor = hasSupervisorRights(useSlice(sessionSlice, (s) => s.session));
  const [pending, setPending] = useState<PendingOverride | null>(null);
  const slots = order
    .map((p) => byPort[p])
    .filter((x): x is SlotView => x !== undefined)
    .sort((a, b) => a.label.localeCompare(b.label, undefined, { numeric: true }));
  const now = useNow(slots.some((s) => s.state === 'running'));
  const passed = slots.filter((s) => s.state === 'pass' || s.state === 'already').length;
  const failed = slots.filter((s) => s.state === 'fail').length;
  const lost = slots.filter((s) => s.state === 'identity-lost').length;
  return (
    <main className="slots-view" aria-labelledby="slots-title">
      <div className="view-head">
        <h1 id="slots-title">{t('slots.title')}</h1>
        <p className="slots-summary">
          {t('slots.summary', { boards: slots.length, passed, failed, wo: workOrder?.id ?? '–' })}
          {lost ? ` · ${t('slots.summaryLost', { lost })}` : ''}
        </p>
        {workOrder?.requireScanIn ? <p className="slots-scan-help">{t('slots.scanHelp')}</p> : null}
        <button type="button" className="btn" onClick={() => sessionSlice.actions.workOrderCleared()}>
          {t('slots.changeWorkOrder')}
        </button>
      </div>
      {slots.length === 0 ? <p className="empty">{t('slots.empty')}</p> : null}
      <ul className={`tiles ${slots.length > 8 ? 'tiles-dense' : ''}`}>
        {slots.map((s) => (
          <Tile
            key={s.port}
            slot={s}
            now={now}
            scanIn={workOrder?.requireScanIn === true}
            supervisor={supervisor}
            onReprovision={(slot) => setPending({ kind: 'reprovision', slot })}
          />
        ))}
      </ul>
      <OverrideDialog pending={pending} onClose={() => setPending(null)} />
    </main>
  );
}
