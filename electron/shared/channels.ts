/**
 * IPC channel names and the app origin, with no dependencies (the preload bundles this file only).
 * Re-exported by shared/ipc.ts, the contract module.
 */

/** Renderer -> main: one request/response channel for every StationApi operation. */
export const INVOKE_CHANNEL = 'station:invoke';
/** Main -> renderer: pushed StationEvents. */
export const EVENT_CHANNEL = 'station:event';
export const CHANNELS = [INVOKE_CHANNEL, EVENT_CHANNEL] as const;
export type Channel = (typeof CHANNELS)[number];

/** The name of the global the preload exposes in the renderer (`window.stationApi`). */
export const EXPOSED_API_KEY = 'stationApi';

/** The only origin main trusts: the renderer is served from `app://station/` (see main/protocol.ts). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'station';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
