/**
 * The preload (sandboxed, context-isolated): exposes `window.stationApi` and nothing else.
 * Bundled into one CommonJS file (dist/electron/preload.cjs) by electron/build.ts, because a
 * sandboxed preload can require only `electron`; the operation names are injected at build time.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { EXPOSED_API_KEY } from '../shared/channels.js';
import { buildStationApi } from './api.js';

declare const __STATION_OPERATIONS__: readonly string[];

contextBridge.exposeInMainWorld(EXPOSED_API_KEY, buildStationApi(ipcRenderer, __STATION_OPERATIONS__));
