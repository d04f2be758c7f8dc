/**
 * A board's label (docs/ui.md "Screens"): the PNG preview the station renders (the same layout and QR modules the
 * printer gets), the QR text, and Reprint (audited at the station) with the printer's answer, plus the PDF and ZPL
 * as downloads. Used by the record view; the slot tile uses `useReprint` and `ReprintResult` for a label that failed
 * after PASS.
 */
import { useEffect, useState } from 'react';
import type { ApiError, LabelFile } from '../../../core/api.js';
import { fromBase64 } from '../../../core/bytes.js';
import { station, unwrap } from '../controller.js';
import { download } from '../download.js';
import { t } from '../i18n/index.js';
import { ErrorText } from './ErrorText.js';

type Printed = { ok: true; target: string } | { ok: false; error: ApiError };

/** Reprint a record's label; the printer's answer (a failure is shown where the button is, not as a banner). */
async function reprint(recordId: string): Promise<Printed | null> {
  const r = await station().reprintLabel({ recordId });
  if (r.ok) return { ok: true, target: r.value.target };
  if (r.error.code.startsWith('PRINTER_') || r.error.code.startsWith('LABEL_')) return { ok: false, error: r.error };
  unwrap(r); // anything else (session ended, not allowed): the usual banner
  return null;
}

/** Reprint with its state for a button: `busy` while the station prints, then `printed` (the printer's answer). */
export function useReprint(recordId: string): { busy: boolean; printed: Printed | null; run: () => void } {
  const [busy, setBusy] = useState(false);
  const [printed, setPrinted] = useState<Printed | null>(null);
  const run = () => {
    setBusy(true);
    setPrinted(null);
    void reprint(recordId)
      .then(setPrinted)
      .finally(() => setBusy(false));
  };
  return { busy, printed, run };
}

/** The outcome of a reprint, under its button. */
export function ReprintResult(props: { printed: Printed | null }) {
  const p = props.printed;
  if (!p) return null;
  return p.ok ? (
    <p className="ok-text" data-testid="label-reprinted" role="status">
      {t('label.printed', { target: p.target })}
    </p>
  ) : (
    <div data-testid="label-reprint-error" role="alert">
      <ErrorText error={p.error} />
    </div>
  );
}

async function save(recordId: string, format: 'pdf' | 'zpl'): Promise<void> {
  const f = unwrap(await station().getLabel({ recordId, format }));
  if (f) download(f.fileName, fromBase64(f.base64) as Uint8Array<ArrayBuffer>, f.mediaType);
}

export function LabelPreview(props: { recordId: string }) {
  const [label, setLabel] = useState<LabelFile | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const { busy, printed, run } = useReprint(props.recordId);
  useEffect(() => {
    let live = true;
    void station()
      .getLabel({ recordId: props.recordId, format: 'png' })
      .then((r) => {
        if (!live) return;
        if (r.ok) setLabel(r.value);
        else if (r.error.code.startsWith('LABEL_')) setError(r.error);
        else unwrap(r);
      });
    return () => {
      live = false;
    };
  }, [props.recordId]);

  if (error) return <ErrorText error={error} />;
  if (!label) return <p>{t('common.loading')}</p>;
  return (
    <div className="label-preview">
      <img
        className="label-image"
        data-testid="label-preview"
        src={`data:image/png;base64,${label.base64}`}
        alt={t('label.alt', { serial: label.serialNumber })}
        width={Math.round((label.size.widthMm / 25.4) * 96 * 1.5)}
      />
      <p className="label-meta">
        {t('label.size', { w: label.size.widthMm, h: label.size.heightMm, dpi: label.size.dpi })}
        {' · '}
        {label.printer ? t('label.printer', { printer: label.printer }) : t('label.noPrinter')}
      </p>
      <p className="mono label-qr" data-testid="label-qr">
        {label.qrPayload}
      </p>
      <div className="label-actions">
        <button
          type="button"
          className="btn btn-primary"
          data-testid="label-reprint"
          disabled={busy || !label.printer}
          onClick={run}
        >
          {busy ? t('label.printing') : t('label.reprint')}
        </button>
        <button type="button" className="btn" onClick={() => void save(props.recordId, 'pdf')}>
          {t('label.downloadPdf')}
        </button>
        <button type="button" className="btn" onClick={() => void save(props.recordId, 'zpl')}>
          {t('label.downloadZpl')}
        </button>
      </div>
      <ReprintResult printed={printed} />
    </div>
  );
}
