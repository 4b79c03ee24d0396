/**
 * The extension <-> language server channel: custom LSP requests and notifications beside the standard ones
 * (diagnostics come through LSP itself). Requests are `qlora/noun/verb`, notifications `qlora/noun/didX`.
 * The server side is server/src/jobs/ (registered once in server.ts); the client side is extension/src/client.ts.
 * Paths on this channel are absolute file-system paths (the extension only runs on local folders).
 */
import type * as E from './engine';

// ---------------------------------------------------------------- shared shapes

/** What the server knows about the engine process. */
export type EngineState = 'stopped' | 'starting' | 'ready' | 'busy' | 'crashed' | 'unavailable';

/** A failure the user can act on: the message says what happened, `fix` what to do. */
export interface JobProblem {
  /** Engine JSON-RPC code (protocol/engine.ts ErrorCodes), or one of JobErrorCodes. */
  code: number;
  message: string;
  fix: string | null;
  file?: string;
  line?: number;
  field?: string;
}

/** Codes for failures found by the server before the engine is asked. */
export const JobErrorCodes = {
  /** No Python for the engine (setting, $QLORA_STUDIO_PYTHON, .venv): `fix` says how to create one. */
  NoPython: -32050,
  /** The engine process would not start or died. */
  EngineFailed: -32051,
  /** The config file does not load or validate. */
  ConfigInvalid: -32052,
  /** A run is already training (one GPU, one run). */
  AlreadyRunning: -32053,
  /** The run folder is missing or holds no adapter. */
  RunNotUsable: -32054,
  /** The feature needs a server piece this build does not have. */
  NotAvailable: -32055,
  /** The user cancelled the job (nothing was written). */
  Cancelled: -32056,
  /** The workspace is not trusted (Restricted Mode): no Python process is started from anything it contains. */
  Untrusted: -32057,
} as const;

// ---------------------------------------------------------------- requests (client -> server)

/** Starts the engine when needed and returns its environment report (torch, CUDA, GPUs). */
export const EnvCheck = 'qlora/env/check';
export interface EnvCheckParams {
  /** Start the engine to ask it (false: only say which Python would be used). */
  probe: boolean;
}
export interface EnvCheckResult {
  python: string | null;
  pythonSource: 'option' | 'env' | 'venv' | null;
  report: E.EnvReport | null;
  problem: JobProblem | null;
}

/** Loads and validates a config, and estimates its memory against the detected GPU. */
export const TrainPlan = 'qlora/train/plan';
export interface TrainPlanParams {
  configPath: string;
}
export interface TrainPlanResult {
  config: E.TrainStartParams['config'] | null;
  plan: E.TrainPlanResult | null;
  problem: JobProblem | null;
}

export const TrainStart = 'qlora/train/start';
export interface TrainStartParams {
  configPath: string;
  /** Absolute folder that holds the runs (a new run gets a sub-folder here). */
  runsDir: string;
  /** Resume this run folder from its newest checkpoint instead of starting a new run. */
  resumeRunDir: string | null;
}
export interface TrainStartResult {
  started: (E.TrainStartResult & { configPath: string }) | null;
  problem: JobProblem | null;
}

export const TrainCancel = 'qlora/train/cancel';
export interface TrainCancelParams {
  runId: string;
}
export type TrainCancelResult = E.TrainCancelResult;

/** Runs that the server is training now (the status bar and dashboard pick up after a window reload). */
export const JobsList = 'qlora/jobs/list';
export type JobsListParams = Record<string, never>;
export interface ActiveJob {
  runId: string;
  runDir: string;
  configPath: string;
  kind: 'train' | 'eval' | 'generate';
  /** The latest progress, when a step has been logged. */
  progress: E.TrainDidProgressParams | null;
  stage: E.Stage | null;
}
export interface JobsListResult {
  jobs: ActiveJob[];
  engine: EngineStatus;
}

/** Summarizes text with a run's adapter (and optionally the base model), through the run's own template. */
export const GenerateSummarize = 'qlora/generate/summarize';
export interface GenerateSummarizeParams {
  runDir: string;
  /** The selected text; becomes the template's input variable (`dialogue` for the DialogSum template). */
  text: string;
  compareWithBase: boolean;
  maxNewTokens: number;
  /** Stream the summary while it is generated: GenerateDidStream notifications carry this id. */
  streamId?: string;
}
export interface GenerateSummarizeResult {
  /** The template variable the text was bound to. */
  variable: string | null;
  /** The rendered prompt the model saw. */
  prompt: string | null;
  adapter: E.Completion | null;
  base: E.Completion | null;
  seconds: number;
  problem: JobProblem | null;
}

/** Zero-shot vs fine-tuned ROUGE on the config's test split; writes runs/<id>/eval/report.{json,md,html}. */
export const EvalStart = 'qlora/eval/start';
export interface EvalStartParams {
  runDir: string;
  /** Test records to score (0: all). */
  limit: number;
}
export interface EvalStartResult {
  /** runs/<id>/eval/report.json once written. */
  reportPath: string | null;
  problem: JobProblem | null;
}

// ---------------------------------------------------------------- notifications (server -> client)

export interface EngineStatus {
  state: EngineState;
  /** First CUDA device, when the engine has reported one. */
  gpu: E.GpuInfo | null;
  python: string | null;
  message: string | null;
}
export const EngineDidChangeState = 'qlora/engine/didChangeState';
export type EngineDidChangeStateParams = EngineStatus;

/** Lines the engine wrote to stderr (its log), batched. */
export const EngineDidLog = 'qlora/engine/didLog';
export interface EngineDidLogParams {
  text: string;
}

/** The engine's training notifications, forwarded with the run folder added. */
export const TrainDidStage = 'qlora/train/didStage';
export type TrainDidStageParams = E.TrainDidStageParams & { runDir: string };
export const TrainDidProgress = 'qlora/train/didProgress';
export type TrainDidProgressParams = E.TrainDidProgressParams & { runDir: string };
export const TrainDidEval = 'qlora/train/didEval';
export type TrainDidEvalParams = E.TrainDidEvalParams & { runDir: string };
export const TrainDidCheckpoint = 'qlora/train/didCheckpoint';
export type TrainDidCheckpointParams = E.TrainDidCheckpointParams & { runDir: string };
export const TrainDidEnd = 'qlora/train/didEnd';
export type TrainDidEndParams = E.TrainDidEndParams & { runDir: string };

/** Progress of an evaluation (generation batches done / total). */
export const EvalDidProgress = 'qlora/eval/didProgress';
export interface EvalDidProgressParams {
  runDir: string;
  phase: 'base' | 'adapter' | 'scoring';
  done: number;
  total: number;
}

/** A run's adapter merged into its base model, written to a new folder (qlora-studio export --merged). */
export const ModelExport = 'qlora/model/export';
export interface ModelExportParams {
  runDir: string;
  /** The folder to create; it must not exist. */
  out: string;
  dtype: E.MergedDtype;
}
export interface ModelExportResult {
  exported: E.ModelExportResult | null;
  problem: JobProblem | null;
}

/**
 * Progress of a ModelExport (the engine's stages: loading the base model, merging the adapter, saving, done), and of
 * the base model's download before a GenerateSummarize or an EvalStart (a hub model not in the cache: the line with
 * bytes, percent, speed and ETA in `stage`, the numbers in `download`).
 */
export const ModelDidProgress = 'qlora/model/didProgress';
export interface ModelDidProgressParams {
  runDir: string;
  stage: string;
  /** The bytes so far, while the run's base model downloads. */
  download?: E.DownloadProgress;
}

/** A streamed summary's text so far (GenerateSummarizeParams.streamId), the adapter's or the base model's. */
export const GenerateDidStream = 'qlora/generate/didStream';
export interface GenerateDidStreamParams {
  streamId: string;
  base: boolean;
  text: string;
  done: boolean;
}

// ---------------------------------------------------------------- typing tables

export interface LspRequests {
  [EnvCheck]: { params: EnvCheckParams; result: EnvCheckResult };
  [TrainPlan]: { params: TrainPlanParams; result: TrainPlanResult };
  [TrainStart]: { params: TrainStartParams; result: TrainStartResult };
  [TrainCancel]: { params: TrainCancelParams; result: TrainCancelResult };
  [JobsList]: { params: JobsListParams; result: JobsListResult };
  [GenerateSummarize]: { params: GenerateSummarizeParams; result: GenerateSummarizeResult };
  [EvalStart]: { params: EvalStartParams; result: EvalStartResult };
  [ModelExport]: { params: ModelExportParams; result: ModelExportResult };
}

export interface LspNotifications {
  [EngineDidChangeState]: EngineDidChangeStateParams;
  [EngineDidLog]: EngineDidLogParams;
  [TrainDidStage]: TrainDidStageParams;
  [TrainDidProgress]: TrainDidProgressParams;
  [TrainDidEval]: TrainDidEvalParams;
  [TrainDidCheckpoint]: TrainDidCheckpointParams;
  [TrainDidEnd]: TrainDidEndParams;
  [EvalDidProgress]: EvalDidProgressParams;
  [GenerateDidStream]: GenerateDidStreamParams;
  [ModelDidProgress]: ModelDidProgressParams;
}

export type LspRequestMethod = keyof LspRequests;
export type LspNotificationMethod = keyof LspNotifications;

/** Every method name on this channel. */
export const LspMethods = [
  EnvCheck,
  TrainPlan,
  TrainStart,
  TrainCancel,
  JobsList,
  GenerateSummarize,
  EvalStart,
  ModelExport,
  EngineDidChangeState,
  EngineDidLog,
  TrainDidStage,
  TrainDidProgress,
  TrainDidEval,
  TrainDidCheckpoint,
  TrainDidEnd,
  EvalDidProgress,
  GenerateDidStream,
  ModelDidProgress,
] as const;
