/**
 * The run folder: what a fine-tune leaves on disk (docs/architecture.md "Run folder"). The engine writes run.json,
 * metrics.jsonl, checkpoints and the adapters; `qlora-studio eval` writes eval/. The server, the CLI, the extension
 * and the webview read it only through these names and types. engine/qlora_engine/protocol.py mirrors the file
 * names (RUN_FOLDER) and the metrics-line keys; engine/tests/test_protocol_mirror.py fails when they drift apart.
 */
import type { DataSummary, EngineErrorData, RougeScores, RunStatus, TrainPicks } from './engine';

/** File and folder names inside `runs/<run-id>/`. */
export const RunFolder = {
  record: 'run.json',
  config: 'config.yaml',
  metrics: 'metrics.jsonl',
  engineLog: 'engine.log',
  checkpoints: 'checkpoints',
  adapter: 'adapter',
  bestAdapter: 'best-adapter',
  eval: 'eval',
  /** TensorBoard event files (log.tensorboard). */
  tensorboard: 'tensorboard',
  /** One log per training process of a train.devices > 1 run: workers/rank-N.log. */
  workers: 'workers',
} as const;

/** Inside `eval/` (or `eval-<adapter folder>/` for another adapter of the run). */
export const EvalFolder = {
  json: 'report.json',
  markdown: 'report.md',
  html: 'report.html',
} as const;

/** The file inside an adapter folder that makes it one (PEFT). */
export const AdapterConfigFile = 'adapter_config.json';

/** The best checkpoint by train.best_metric (run.json's `best`): its checkpoint is kept, best-adapter/ is its copy. */
export interface BestCheckpoint {
  metric: 'eval_loss' | 'rouge1' | 'rouge2' | 'rougeL' | 'rougeLsum';
  value: number;
  step: number;
  /** checkpoints/step-N of that step. */
  path: string;
  /** <run-dir>/best-adapter. */
  adapterPath: string;
}

/** run.json, as the engine writes it (status `running` while the run is active). */
export interface RunRecord {
  runId: string;
  status: RunStatus | 'running';
  step: number;
  totalSteps: number;
  startedAt: string | null;
  endedAt: string | null;
  data: DataSummary | null;
  adapterPath: string | null;
  error: EngineErrorData | null;
  best: BestCheckpoint | null;
  /** The "auto" settings as resolved for this run (absent in runs written before picks existed). */
  picks?: TrainPicks | null;
  /** Why the run ended before totalSteps (train.early_stopping), or null; absent in runs written before it existed. */
  stopReason?: string | null;
}

/** One line of metrics.jsonl per logged step. A resumed run logs the steps after its checkpoint again. */
export interface TrainLine {
  type: 'train';
  step: number;
  epoch: number;
  loss: number | null;
  learningRate: number;
  gradNorm: number | null;
  tokensPerSecond: number;
  /** Tokens trained in this session (since the start or the resume). */
  tokens: number;
  gpuMemoryBytes: number | null;
  /** train.devices > 1 only: each GPU's peak in rank order (TrainDidProgressParams.gpuMemoryPerDevice). */
  gpuMemoryPerDevice?: number[] | null;
  elapsedSeconds: number;
  etaSeconds: number;
}

/** One line of metrics.jsonl per evaluation. */
export interface EvalLine {
  type: 'eval';
  step: number;
  evalLoss: number;
  evalRecords: number;
  rouge?: RougeScores;
  rougeRecords?: number;
  /** The best evaluation so far by train.best_metric. */
  best?: true;
}

export type MetricsLine = TrainLine | EvalLine;

// ---------------------------------------------------------------- eval/report.json (qlora-studio eval)

/** precision, recall and F of one ROUGE type (rouge_score's Score). */
export interface Score {
  precision: number;
  recall: number;
  fmeasure: number;
}

export const REPORT_VERSION = 1;
export const METRICS = ['rouge1', 'rouge2', 'rougeL', 'rougeLsum'] as const;
export type MetricName = (typeof METRICS)[number];
export type EvalSplit = 'test' | 'validation' | 'train';

export interface Interval {
  low: number;
  high: number;
}

/** One ROUGE type, base model vs adapter: mean F (what the table shows), its bootstrap interval, mean P/R/F. */
export interface MetricRow {
  name: MetricName;
  /** Mean F-measure of the zero-shot base model. */
  base: number;
  /** Mean F-measure with the adapter. */
  adapter: number;
  /** adapter - base (absolute, in F points of 0..1). */
  improvement: number;
  baseInterval: Interval;
  adapterInterval: Interval;
  baseScore: Score;
  adapterScore: Score;
}

export interface Prediction {
  text: string;
  promptTokens: number;
  newTokens: number;
  /** This prediction's F per ROUGE type (against the best-matching reference). */
  rouge: Record<MetricName, number>;
}

export interface ExampleRow {
  /** 0-based among the scored examples. */
  index: number;
  /** 1-based line in the split's file. */
  line: number;
  /** The prompt's input: the one prompt variable's value (the dialogue), or the rendered prompt. */
  input: string;
  references: string[];
  base: Prediction;
  adapter: Prediction;
}

export interface EvalReport {
  version: typeof REPORT_VERSION;
  createdAt: string;
  /** The run the adapter belongs to (the adapter folder's parent), when it is a run folder. */
  runDir: string | null;
  runId: string | null;
  adapter: string;
  model: string;
  configFile: string | null;
  template: string;
  split: EvalSplit;
  dataFile: string;
  /** Examples scored (after --limit and after skipping prompts over max_length). */
  count: number;
  /** Records in the split file. */
  records: number;
  /** Records left out because the prompt alone is longer than max_length (never silently). */
  skipped: { line: number; promptTokens: number }[];
  /** The record fields scored against (several: best F per type, as rouge_score's score_multi). */
  referenceFields: string[];
  generation: { maxNewTokens: number; batchSize: number; temperature: number; topP: number; seed: number; stop: string[] };
  rouge: { package: string; useStemmer: boolean; splitSummaries: boolean; bootstrap: { samples: number; confidence: number; seed: number } };
  metrics: MetricRow[];
  examples: ExampleRow[];
  seconds: { base: number; adapter: number; total: number };
  /** Of `seconds`, what the engine spent generating: model loading and the channel excluded (absent in reports
   * written before 2026-12-02's second session). */
  generating?: { base: number; adapter: number };
  /** Of `seconds`, what the engine spent loading the model and the adapters (absent in reports written before
   * 2026-12-03's fourth session); the rest is the engine's start and the channel. */
  loading?: { base: number; adapter: number };
}

