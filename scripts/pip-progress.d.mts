// Types for pip-progress.mjs (plain ESM so that setup-engine.mjs runs it before anything is installed).
export interface Step {
  id: 'environment' | 'torch' | 'packages' | 'models';
  title: string;
  weight: number;
}
export declare const STEPS: Step[];
export interface Planned {
  name: string;
  version: string;
  url: string;
  file: string;
  /** A local path or editable project: nothing to download. */
  local: boolean;
}
export declare function plannedInstalls(report: unknown): Planned[];
export declare function formatBytes(n: number): string;
export declare class PipProgress {
  constructor(planned: Planned[], sizes?: Map<string, number>);
  total: number;
  phase: 'resolving' | 'downloading' | 'building' | 'installing' | 'done';
  readonly downloaded: number;
  feed(line: string): boolean;
  fraction(): number;
  message(): string;
}
export declare function overallPercent(index: number, fraction: number): number;
export declare const PROGRESS_PREFIX: string;
export interface ProgressEvent {
  step: number;
  steps: number;
  id: Step['id'];
  title: string;
  percent: number;
  message: string;
  downloaded?: number;
  total?: number;
}
export declare function progressLine(event: ProgressEvent): string;
export declare function parseProgressLine(line: string): ProgressEvent | null;
export declare function pyprojectDependencies(text: string, extra?: string | null): string[];
