/**
 * HSM & devices: token state, slot, key labels; ports and USB devices with access problems explained; the station
 * checks of `station doctor` (Doctor.tsx).
 */
import { useEffect, useState } from 'react';
import type { DevicesView, HsmView } from '../../../core/api.js';
import { ErrorText } from '../components/ErrorText.js';
import { localiseError } from '../i18n/errors.js';
import { DoctorChecks } from './Doctor.js';
import { station, unwrap } from '../controller.js';
import { language, t } from '../i18n/index.js';

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

export function Devices() {
  const [hsm, setHsm] = useState<HsmView | null>(null);
  const [dev, setDev] = useState<DevicesView | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    void Promise.all([station().getHsm({}), station().getDevices({})]).then(([h, d]) => {
      if (!live) return;
      const hv = unwrap(h);
      const dv = unwrap(d);
      if (hv) setHsm(hv);
      if (dv) setDev(dv);
    });
    return () => {
      live = false;
    };
  }, [tick]);
  const yn = (x: boolean) => (x ? t('common.yes') : t('common.no'));
  return (
    <main className="devices-view" aria-labelledby="devices-title">
      <div className="view-head">
        <h1 id="devices-title">{t('devices.title')}</h1>
        <button type="button" className="btn" onClick={() => setTick(tick + 1)}>
          {t('common.refresh')}
        </button>
      </div>
      <div className="record-grid">
        <DoctorChecks refresh={tick} />
        <section className="card" aria-labelledby="hsm-title">
          <h2 id="hsm-title">{t('hsm.title')}</h2>
          {hsm ? (
            <>
              <dl className="fields">
                <dt>{t('hsm.present')}</dt>
                <dd className={hsm.present ? 'ok-text' : 'bad-text'} data-testid="hsm-present">
                  {yn(hsm.present)}
                </dd>
                <dt>{t('hsm.loggedIn')}</dt>
                <dd className={hsm.loggedIn ? 'ok-text' : 'bad-text'}>{yn(hsm.loggedIn)}</dd>
                <dt>{t('hsm.module')}</dt>
                <dd className="mono">{hsm.module}</dd>
                <dt>{t('hsm.slot')}</dt>
                <dd>{hsm.slotId ?? '–'}</dd>
                <dt>{t('hsm.token')}</dt>
                <dd>{`${hsm.tokenLabel}${hsm.tokenSerial ? ` · ${hsm.tokenSerial}` : ''}`}</dd>
                <dt>{t('hsm.manufacturer')}</dt>
                <dd>{hsm.manufacturer ?? '–'}</dd>
              </dl>
              {hsm.error ? <ErrorText error={hsm.error} /> : null}
              <h3>{t('hsm.keys')}</h3>
              <table className="table">
                <thead>
                  <tr>
                    <th scope="col">{t('hsm.keyLabel')}</th>
                    <th scope="col">{t('hsm.keyClass')}</th>
                    <th scope="col">{t('hsm.keyType')}</th>
                  </tr>
                </thead>
                <tbody>
                  {hsm.keys.map((k) => (
                    <tr key={`${k.label}-${k.class}`}>
                      <td className="mono">{k.label}</td>
                      <td>{k.class}</td>
                      <td>{k.keyType ?? '–'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          ) : (
            <p>{t('common.loading')}</p>
          )}
        </section>
        <section className="card" aria-labelledby="ports-title">
          <h2 id="ports-title">{t('devices.ports')}</h2>
          {dev ? (
            <>
              <p>
                {dev.usb.available ? t('devices.usbOk') : t('devices.usbUnavailable', { reason: dev.usb.reason ?? '' })}
              </p>
              <table className="table">
                <thead>
                  <tr>
                    <th scope="col">{t('devices.path')}</th>
                    <th scope="col">{t('devices.source')}</th>
                    <th scope="col">{t('devices.usb')}</th>
                    <th scope="col">{t('devices.profile')}</th>
                  </tr>
                </thead>
                <tbody>
                  {dev.ports.map((p) => (
                    <tr key={p.path}>
                      <td className="mono">{p.path}</td>
                      <td>{t(`devices.source.${p.source}`)}</td>
                      <td className="mono">
                        {p.usb ? `${hex4(p.usb.vendorId)}:${hex4(p.usb.productId)} ${p.usb.product ?? ''}` : '–'}
                      </td>
                      <td>{p.profileId ?? '–'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <h3>{t('devices.problems')}</h3>
              {dev.problems.length === 0 ? <p className="ok-text">{t('devices.noProblems')}</p> : null}
              <ul className="problems">
                {dev.problems.map((p) => {
                  const l = localiseError(p, language());
                  return (
                    <li key={`${p.path}-${p.code}`} className="problem">
                      <strong className="mono">{p.path}</strong>
                      <p>{`${p.code}: ${l.text}`}</p>
                      <p>{l.guidance}</p>
                    </li>
                  );
                })}
              </ul>
            </>
          ) : (
            <p>{t('common.loading')}</p>
          )}
        </section>
      </div>
    </main>
  );
}
