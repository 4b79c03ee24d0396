/**
 * The extension <-> dashboard webview channel (postMessage). Every message is `{ type, ...payload }`.
 * The host posts nothing before the webview has sent `ready`; the webview keeps what it needs to survive a reload
 * in getState/setState (selected runs, open tab) and asks for data again after `ready`.
 */
import type { DownloadProgress } from './engine';

// ---------------------------------------------------------------- data shapes

export type RunStatus = 'pending' | 'running' | 'completed' | 'cancelled' | 'failed' | 'unknown';

/** One logged optimizer step (a `"type":"train"` line of metrics.jsonl, or a train/didProgress event). */
export interface TrainPoint {
  step: number;
  loss: number | null;
  learningRate: number | null;
  gradNorm: number | null;
  /** Every device's tokens (the total) when the run trains on several. */
  tokensPerSecond: number | null;
  /** The highest peak of the run's GPUs. */
  gpuMemoryBytes: number | null;
  /** Each GPU's peak in rank order, when the run trains on more than one; else null. */
  gpuMemoryPerDevice: number[] | null;
  elapsedSeconds: number | null;
}

/** One evaluation (a `"type":"eval"` line, or a train/didEval event). */
export interface EvalPoint {
  step: number;
  evalLoss: number;
}

/** The few config values worth showing beside the charts. */
export interface ConfigSummary {
  model: string;
  quantization: string;
  loraR: number | null;
  loraAlpha: number | null;
  targetModules: string[];
  maxLength: number | null;
  maxSteps: number | null;
  /** train.devices when config.yaml names a count ("auto" is the GPUs visible then: only the progress tells). */
  devices: number | null;
  microBatchSize: number | null;
  gradientAccumulation: number | null;
  learningRate: number | null;
  optimizer: string | null;
  train: string | null;
  template: string | null;
}

export interface RunInfo {
  runId: string;
  runDir: string;
  status: RunStatus;
  step: number;
  totalSteps: number;
  startedAt: string | null;
  endedAt: string | null;
  error: string | null;
  /**
   * run.json's best (by train.best_metric: eval_loss, rouge1, ...) when the run has one; else the lowest eval loss
   * (evalLoss), or the lowest train loss (loss). `label` is how to name it ("ROUGE-1", "eval loss").
   */
  best: { name: 'eval_loss' | 'rouge1' | 'rouge2' | 'rougeL' | 'rougeLsum' | 'evalLoss' | 'loss'; label: string; value: number; step: number } | null;
  hasAdapter: boolean;
  hasReport: boolean;
  /** Why the run ended before totalSteps (train.early_stopping), or null. */
  stopReason: string | null;
}

/** ROUGE, base model vs adapter, on the test split (runs/<id>/eval/report.json). */
export interface ReportView {
  split: string;
  examples: number;
  metrics: { name: string; base: number; adapter: number }[];
  samples: { input: string; reference: string; base: string; adapter: string }[];
}

export interface RunData {
  info: RunInfo;
  config: ConfigSummary | null;
  train: TrainPoint[];
  eval: EvalPoint[];
  /** From the latest progress event while the run trains. */
  etaSeconds: number | null;
  report: ReportView | null;
}

// ---------------------------------------------------------------- host -> webview

export type HostMessage =
  /** Every run in the runs folder (newest first), to pick from. */
  | { type: 'runs'; runs: RunInfo[] }
  /** Full data of a run (answer to `load`, or pushed when a run starts). */
  | { type: 'runData'; data: RunData }
  /** Live: one more step of a training run. */
  | { type: 'progress'; runId: string; point: TrainPoint; totalSteps: number; etaSeconds: number }
  /** Live: one more evaluation. */
  | { type: 'evalPoint'; runId: string; point: EvalPoint }
  /**
   * Live: the run's status changed (stage message while loading, or its end). `download`: the bytes so far while the
   * run's stage is `downloading` (a hub model not cached yet), sent a few times a second; null in every other stage.
   */
  | { type: 'status'; runId: string; status: RunStatus; message: string | null; download: DownloadProgress | null }
  /** Show these runs (the dashboard was opened for them). */
  | { type: 'show'; runIds: string[]; tab: DashboardTab | null };

// ---------------------------------------------------------------- webview -> host

export type DashboardTab = 'charts' | 'report';

export type WebviewMessage =
  | { type: 'ready' }
  /** The webview needs full data for these runs (on select, or after a reload). */
  | { type: 'load'; runIds: string[] }
  | { type: 'cancel'; runId: string }
  | { type: 'open'; runId: string; what: 'config' | 'adapter' | 'report' | 'log' }
  | { type: 'evaluate'; runId: string };

/** What the webview persists with setState (and the serializer receives after a reload). */
export interface DashboardState {
  selected: string[];
  tab: DashboardTab;
}
