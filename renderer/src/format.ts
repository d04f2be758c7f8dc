/** Formatting helpers for durations, dates and numbers (locale follows the UI language). */
import { language } from './i18n/index.js';

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')} min`;
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(language() === 'de' ? 'de-DE' : 'en-GB');
}

export function formatPercent(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}
