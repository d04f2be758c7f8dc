/** Entry point: selects the transport, loads the station status, renders the app. */
import { StrictMode } from 'react';
import { z } from 'zod';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { selectTransport } from './api/index.js';
import { connect, loadStatus } from './controller.js';
import { language } from './i18n/index.js';
import { syncSlice } from './store/slices.js';
import './styles.css';

// No eval under the strict CSP: zod's JIT would try new Function() and log a violation.
z.config({ jitless: true });
document.documentElement.lang = language();
// When the event stream REconnects, the state is read again: events sent while it was down (a slot that failed
// meanwhile) are not replayed, so without this a tile could stay "running" after a dropped stream. The first
// connect needs no reload (loadStatus below runs at start; the IPC transport reports online before connect()).
let connectedBefore = false;
const api = selectTransport((online) => {
  if (!online) return syncSlice.actions.stationDisconnected();
  syncSlice.actions.stationConnected();
  if (connectedBefore) void loadStatus();
  connectedBefore = true;
});
if (api) {
  connect(api);
  void loadStatus();
}
const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App transportMissing={api === null} />
    </StrictMode>,
  );
}
