/**
 * How sizes, counts and durations are shown, the same in the CLI and the editor (status bar, Runs view, messages,
 * the dashboard):
 * 1.35 GiB, 2.78B parameters, 2m 05s. A missing or non-finite value shows as an em dash.
 */

const MISSING = '—';

/** 512 B, 1.50 KiB, 12.3 GiB, 200 MiB: binary units, three significant digits. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return MISSING;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  return `${value.toFixed(Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2)} ${units[unit]}`;
}

/** 2.78B, 10.5M, 12.3k, 999 (parameters, tokens): no space, so a count never reads as bytes. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** 45s, 2m 05s, 1h 02m. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return MISSING;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/** 45.2 MiB/s. */
export function formatSpeed(bytesPerSecond: number | null | undefined): string {
  return bytesPerSecond === null || bytesPerSecond === undefined || !Number.isFinite(bytesPerSecond) ? MISSING : `${formatBytes(bytesPerSecond)}/s`;
}

/** What every view shows of a model download (a DownloadProgress of protocol/engine.ts). */
export interface DownloadNumbers {
  model: string;
  /** The file being fetched now. */
  file: string;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number;
}

/** 0..1 of a download's bytes. */
export function downloadFraction(d: DownloadNumbers): number {
  return d.bytesTotal > 0 ? Math.min(1, d.bytesDone / d.bytesTotal) : 0;
}

/** Seconds left at the current speed; null before the speed is known. */
export function downloadEta(d: DownloadNumbers): number | null {
  return d.bytesPerSecond > 0 ? Math.max(0, d.bytesTotal - d.bytesDone) / d.bytesPerSecond : null;
}

/**
 * A download's parts, as the CLI's bar and the dashboard's show them: bytes done of total, speed, time left ('done' at
 * the end), the file being fetched.
 */
export function downloadFields(d: DownloadNumbers): [bytes: string, speed: string, left: string, file: string] {
  const left = d.bytesDone >= d.bytesTotal ? 'done' : `ETA ${formatDuration(downloadEta(d))}`;
  return [`${formatBytes(d.bytesDone)} / ${formatBytes(d.bytesTotal)}`, formatSpeed(d.bytesPerSecond), left, d.file];
}

/** "Downloading microsoft/phi-2: 1.20 GiB of 5.18 GiB (23%), 45.2 MiB/s, ETA 1m 35s" (the editor's stage line). */
export function formatDownload(d: DownloadNumbers): string {
  const percent = Math.floor(downloadFraction(d) * 100);
  return `Downloading ${d.model}: ${formatBytes(d.bytesDone)} of ${formatBytes(d.bytesTotal)} (${percent}%), ${formatSpeed(d.bytesPerSecond)}, ETA ${formatDuration(downloadEta(d))}`;
}
