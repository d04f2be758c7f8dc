/**
 * Transport selection: Electron's preload when present, else the HTTP bridge of the page's origin
 * with the token from the URL fragment `#token=...` (kept in sessionStorage, removed from the URL).
 */
import type { StationApi } from '../../../core/api.js';
import { createBridgeApi, randomClientId } from './bridge.js';
import { createIpcApi, ipcAvailable } from './ipc.js';

export { createBridgeApi } from './bridge.js';
export { createIpcApi } from './ipc.js';

const TOKEN_KEY = 'lineStation.token';
const CLIENT_KEY = 'lineStation.clientId';

/** Takes the token out of the URL fragment into sessionStorage and returns the token in force. */
export function takeToken(): string | null {
  const m = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (m?.[1]) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The StationApi for this page, or null when there is neither a preload nor a token. */
export function selectTransport(onConnection: (online: boolean) => void): StationApi | null {
  if (ipcAvailable()) {
    onConnection(true);
    return createIpcApi();
  }
  const token = takeToken();
  if (!token) return null;
  let clientId = sessionStorage.getItem(CLIENT_KEY);
  if (!clientId) {
    clientId = randomClientId();
    sessionStorage.setItem(CLIENT_KEY, clientId);
  }
  return createBridgeApi({ baseUrl: window.location.origin, token, clientId, onConnection });
}
