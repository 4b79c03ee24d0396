/**
 * The server <-> engine channel: JSON-RPC 2.0 over the engine's stdio with LSP's Content-Length framing.
 * engine/qlora_engine/protocol.py mirrors every method name and error code here; test/unit/protocol.test.ts
 * checks that the two agree. Requests are `noun/verb` (or a bare lifecycle verb), notifications `noun/didX`.
 */
import type { ResolvedConfig } from './config';

// ---------------------------------------------------------------- lifecycle

export const Initialize = 'initialize';
export interface InitializeParams {
  clientName: string;
}
export interface GpuInfo {
  index: number;
  name: string;
  totalMemory: number; // bytes
  freeMemory: number; // bytes
  capability: [number, number];
  bf16: boolean;
}
export interface PackageInfo {
  available: boolean;
  version: string | null;
  /** Why it is unavailable (import error), when it is. */
  error: string | null;
}
export interface EnvReport {
  python: { version: string; executable: string };
  platform: string;
  /** cuda: torch.version.cuda (null: a CPU build); mps: Apple's Metal backend usable (absent before 2026-12-02). */
  torch: PackageInfo & { cuda: string | null; mps?: boolean };
  transformers: PackageInfo;
  peft: PackageInfo;
  accelerate: PackageInfo;
  bitsandbytes: PackageInfo;
  cuda: { available: boolean; devices: GpuInfo[] };
  /** The NVIDIA driver nvidia-smi reports, null without one (absent from engines before 2026-12-02). */
  nvidia?: { driver: string | null };
}
export type InitializeResult = EnvReport;

export const Shutdown = 'shutdown';
export type ShutdownResult = null;

// ---------------------------------------------------------------- training

export const TrainStart = 'train/start';
export interface TrainStartParams {
  /** Folder the run writes (created by the engine once the inputs validate). */
  runDir: string;
  config: ResolvedConfig;
  /** Resume from the newest complete checkpoint in runDir instead of starting fresh. */
  resume: boolean;
}
export interface DataSummary {
  trainRecords: number;
  validationRecords: number;
  /** Records dropped because prompt + response reached max_length; never silent. */
  droppedTooLong: number;
  /** Sequences after packing (equals trainRecords without packing). */
  trainSequences: number;
}
export interface TrainStartResult {
  runId: string;
  runDir: string;
  totalSteps: number;
  /** Optimizer step the run continues from (0 for a fresh run). */
  startStep: number;
  data: DataSummary;
}

export const TrainCancel = 'train/cancel';
export interface TrainCancelParams {
  runId: string;
}
export interface TrainCancelResult {
  /** False when no such run is active (already ended). */
  cancelling: boolean;
}

export const TrainPlan = 'train/plan';
export interface TrainPlanParams {
  config: ResolvedConfig;
}
export interface PlanTerm {
  name: string;
  bytes: number;
  detail: string;
}
export interface TrainPlanResult {
  /** Parameters of the base model, and of the LoRA adapter for this config. */
  baseParameters: number;
  loraParameters: number;
  /** Estimated peak with gradient checkpointing as configured, and both variants. */
  peakBytes: number;
  peakBytesWithCheckpointing: number;
  peakBytesWithoutCheckpointing: number;
  /** Largest first. */
  terms: PlanTerm[];
  device: GpuInfo | null;
  /** peakBytes <= device.freeMemory; null without a GPU. */
  fits: boolean | null;
  /** The "auto" settings resolved for this device (peakBytes is planned with them). */
  picks: TrainPicks;
  /**
   * Training processes (train.devices, "auto" counted). Every figure above is one GPU's, for picks.strategy: with
   * ddp each process holds the whole model; with fsdp the base model's weights are sharded across them.
   */
  devices: number;
  /** strategy fsdp only: what each GPU holds once it has loaded the whole base model, before sharding it. */
  loadBytes?: number;
}

/** micro_batch_size, gradient_checkpointing and tokens_per_pass as the engine runs them ("auto" resolved). */
export interface TrainPicks {
  microBatchSize: number;
  gradientCheckpointing: boolean;
  /** Token budget of one forward pass (token batching), else micro_batch_size x max_length. */
  tokensPerPass: number;
  /** Decoder layers compiled with torch.compile (train.compile resolved; false after a compilation failure). */
  compile: boolean;
  /** Training passes replayed as CUDA graphs (train.cuda_graphs resolved; false after a pass could not be recorded). */
  cudaGraphs: boolean;
  /** 4-bit base weights held dequantized once (train.dense_base resolved). */
  denseBase: boolean;
  /** train.strategy resolved: ddp (also for one device) or fsdp (the base sharded; compile and CUDA graphs off). */
  strategy: 'ddp' | 'fsdp';
  /** Why, in words ("as configured" when nothing was auto). */
  reason: string;
}

// ---------------------------------------------------------------- models

/** Converts a GGUF file into a transformers model folder (safetensors, config, tokenizer, chat template). */
export const ModelImport = 'model/import';
export interface ModelImportParams {
  /** Absolute path of the .gguf file. */
  source: string;
  /** Absolute path of the folder to write (absent, empty, or an earlier import, which is replaced). */
  out: string;
}
export interface ModelImportResult {
  source: string;
  sha256: string;
  /** GGUF general.architecture (llama, phi3, ...) and the transformers model_type it became. */
  architecture: string;
  modelType: string;
  /** GGML tensor types found (Q4_1, F32, ...). */
  tensorTypes: string[];
  parameters: number;
  dtype: string;
  /** Every file written, with its size in bytes. */
  files: Record<string, number>;
  /** True when `out` already held an intact import of the same file (nothing was written). */
  skipped: boolean;
}

/** A run's adapter merged into its base model: a folder AutoModelForCausalLM loads without peft, or (format gguf) one
 * GGUF file for llama.cpp (llama and phi2 families). */
export const ModelExport = 'model/export';
export type ModelExportParams = {
  /** The run's config (config.yaml): the base model, its tokenizer and trust_remote_code come from here. */
  config: ResolvedConfig;
  /** Absolute path of the PEFT adapter folder. */
  adapter: string;
  /** Absolute path of the folder (merged) or file (gguf) to write; it must not exist (nothing is overwritten). */
  out: string;
} & ({ format?: 'merged'; dtype: MergedDtype } | { format: 'gguf'; quant: GgufQuant });
export type MergedDtype = 'bfloat16' | 'float16' | 'float32';
export type GgufQuant = 'f16' | 'q8_0';
export interface ModelExportResult {
  out: string;
  base: string;
  adapter: string;
  /** The merged folder's dtype, or the GGUF file's weight type (f16, q8_0). */
  dtype: string;
  /** gguf: the file's architecture (llama, phi2). */
  architecture?: string;
  /** The quantization the run trained with ('none', 'nf4', ...): the merge uses the base's original weights. */
  trainedOnQuantization: string;
  baseWeights: string;
  parameters: number;
  /** Every file written, with its size in bytes (qlora-export.json records the same). */
  files: Record<string, number>;
}

/**
 * A hub model's files fetched into the Hugging Face cache (HF_HUB_CACHE; the hub is HF_ENDPOINT): config, tokenizer,
 * chat template and the safetensors weights (never pickled *.bin weights). An interrupted download resumes where it
 * stopped (the partial file is kept beside the blob and fetched on with an HTTP Range request); files already in the
 * cache are not fetched again. `model/didProgress` (stage `downloading`, with `download`) reports the bytes.
 */
export const ModelPull = 'model/pull';
export interface ModelPullParams {
  /** Hub id (`microsoft/phi-2`). */
  model: string;
  /** Branch, tag or commit; default the repository's default branch. */
  revision?: string;
}
export interface ModelPullResult {
  model: string;
  revision: string;
  /** The commit the files are from. */
  commit: string;
  /** The snapshot folder in the cache (what transformers loads for this id). */
  folder: string;
  /** Every file of the model, with its size in bytes. */
  files: Record<string, number>;
  /** Their total size, and how much of it this pull fetched (0: all were cached). */
  bytes: number;
  downloadedBytes: number;
}

/** Bytes of a model download so far (model/pull, and the `downloading` stage of training, eval and summarize). */
export interface DownloadProgress {
  model: string;
  /** The file being fetched now. */
  file: string;
  /** Bytes of the model's files on disk, those found complete or partial before this download included. */
  bytesDone: number;
  bytesTotal: number;
  /** Over the last few seconds; 0 before any byte arrived. */
  bytesPerSecond: number;
  filesDone: number;
  filesTotal: number;
}

/** Engine → server, during model/import, model/export, model/pull and a generate that downloads its model. */
export const ModelDidProgress = 'model/didProgress';
export interface ModelDidProgressParams {
  /** checksum, reading, tokenizer, dequantizing N tensors, saving, downloading, done */
  stage: string;
  /** 0..1 within the stage, when known. */
  fraction: number | null;
  /** Stage `downloading`: the bytes so far. */
  download?: DownloadProgress;
}

// ---------------------------------------------------------------- generation

export const Generate = 'generate';
export interface GenerateParams {
  /** Model, quantization, compute dtype, template and max_length come from here. */
  config: ResolvedConfig;
  /** PEFT adapter folder; null generates with the base model. */
  adapter: string | null;
  /** Template variables per prompt (rendered through the config's template prompt part). */
  records: Record<string, unknown>[];
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  seed: number;
  /** Records per batch (with alsoBase each record is two rows of its batch). */
  batchSize: number;
  /** Also generate with the base model, in the same batches as the adapter (per-row adapters): `baseCompletions`. */
  alsoBase?: boolean;
  /** Stream the text as it is generated: generate/didStream notifications carry this id. */
  streamId?: string;
}
export interface Completion {
  text: string;
  promptTokens: number;
  newTokens: number;
}
export interface GenerateResult {
  completions: Completion[];
  /** With alsoBase: the base model's completions of the same records, in the same order. */
  baseCompletions?: Completion[];
  /** Generating, from the first batch to the last. */
  seconds: number;
  /** Before that, loading the model and the adapter (about 0 when the engine held both already). */
  loadSeconds?: number;
}

/** A streamed generate's text so far, for one record (and the adapter or the base), while it is generated. */
export const GenerateDidStream = 'generate/didStream';
export interface GenerateDidStreamParams {
  streamId: string;
  /** The record's index in the request. */
  index: number;
  /** The base model's row (alsoBase), not the adapter's. */
  base: boolean;
  /** The text generated so far, cut at a stop string; the last notification of a row has `done`. */
  text: string;
  done: boolean;
}

// ---------------------------------------------------------------- cancellation (server -> engine)

/**
 * LSP's cancellation: the request with this id stops where it can and answers RequestCancelled. A download (the
 * `downloading` stage of generate, model/pull) stops within a chunk and keeps what arrived, so the next request
 * resumes it; a request that cannot stop midway (a generation batch, a training step) answers as usual. The engine
 * acts on it as soon as it is read, while the request runs.
 */
export const CancelRequest = '$/cancelRequest';
export interface CancelRequestParams {
  id: number;
}

// ---------------------------------------------------------------- notifications (engine -> server)

export const TrainDidStage = 'train/didStage';
export type Stage = 'loading-data' | 'downloading' | 'loading-model' | 'training' | 'saving';
export interface TrainDidStageParams {
  runId: string;
  stage: Stage;
  message: string;
  /** Stage `downloading` (a hub model not yet in the cache): sent again as bytes arrive, a few times a second. */
  download?: DownloadProgress;
}

export const TrainDidProgress = 'train/didProgress';
export interface TrainDidProgressParams {
  runId: string;
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  /** Non-padding tokens per second since the last progress event; with train.devices > 1, every process's tokens. */
  tokensPerSecond: number;
  /** Non-padding tokens trained since this session of the run began (start or resume), on every device. */
  tokens: number;
  /** torch.cuda.max_memory_allocated since the run began (with train.devices > 1: the highest of the GPUs); null on CPU. */
  gpuMemoryBytes: number | null;
  /**
   * With train.devices > 1 only: each GPU's peak, as gpuMemoryBytes, in rank order (null when the processes train on
   * the CPU). Absent with one device.
   */
  gpuMemoryPerDevice?: number[] | null;
  elapsedSeconds: number;
  etaSeconds: number;
}

export const TrainDidEval = 'train/didEval';
/** Mean ROUGE F-measure per type (rouge_score 0.1.2, Porter stemmer on; several references: best per type). */
export interface RougeScores {
  rouge1: number;
  rouge2: number;
  rougeL: number;
  rougeLsum: number;
}
export interface TrainDidEvalParams {
  runId: string;
  step: number;
  evalLoss: number;
  evalRecords: number;
  /**
   * At train.rouge_every steps (and the last): ROUGE of greedy generations on the first train.rouge_samples
   * validation records, with the adapter being trained. Absent on loss-only evaluations.
   */
  rouge?: RougeScores;
  /** Validation records generated for `rouge`. */
  rougeRecords?: number;
  /** With train.best_metric: this evaluation is the best so far (its checkpoint is kept, best-adapter/ updated). */
  best?: boolean;
}

export const TrainDidCheckpoint = 'train/didCheckpoint';
export interface TrainDidCheckpointParams {
  runId: string;
  step: number;
  path: string;
}

export const TrainDidEnd = 'train/didEnd';
export type RunStatus = 'completed' | 'cancelled' | 'failed';
export interface TrainDidEndParams {
  runId: string;
  status: RunStatus;
  step: number;
  /** Final adapter folder when completed; null otherwise. */
  adapterPath: string | null;
  /** The newest checkpoint to resume from, when any. */
  checkpointPath: string | null;
  error: EngineErrorData | null;
}

// ---------------------------------------------------------------- errors

/** JSON-RPC error codes for known failures; each carries a message a user can act on. */
export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  OutOfMemory: -32001,
  BitsAndBytesMissing: -32002,
  ModelNotFound: -32003,
  BadDataset: -32004,
  BadConfig: -32005,
  BadTemplate: -32006,
  CudaUnavailable: -32007,
  RunNotFound: -32008,
  Busy: -32009,
  CheckpointNotFound: -32010,
  /** The loss or gradient norm was not finite for train.max_nonfinite_steps consecutive steps. */
  TrainingDiverged: -32011,
  /** A file of the run folder could not be written (disk full, permissions); what was there before is intact. */
  WriteFailed: -32012,
  /** The checkpoint to resume from is damaged (truncated or corrupt file); the message names it and the previous one. */
  CheckpointDamaged: -32013,
  /** A model file that cannot be imported: truncated or corrupt, or an unsupported architecture or quantization. */
  BadModelFile: -32014,
  /** The model hub could not be reached (no network, HF_ENDPOINT down, a proxy, a hub error 5xx). */
  HubUnreachable: -32015,
  /** The hub refused the model: gated (its license not accepted) or private, with no token or a token without access. */
  ModelGated: -32016,
  /** The request was cancelled ($/cancelRequest) before it finished; a download keeps what arrived. */
  RequestCancelled: -32800,
} as const;
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Codes that mean "the user's input is wrong": the CLI exits 2 for these. */
export const BadInputCodes: readonly number[] = [
  ErrorCodes.ModelNotFound,
  ErrorCodes.BadDataset,
  ErrorCodes.BadConfig,
  ErrorCodes.BadTemplate,
  ErrorCodes.CudaUnavailable,
  ErrorCodes.BitsAndBytesMissing,
  ErrorCodes.CheckpointNotFound,
  ErrorCodes.BadModelFile,
  ErrorCodes.ModelGated,
];

/** `error.data` of a known failure: where the problem is, and what to do about it. */
export interface EngineErrorData {
  code: number;
  message: string;
  /** What to do about this kind of failure, one sentence (engine/qlora_engine/errors.py is its one home). */
  remedy?: string;
  file?: string;
  /** 1-based. */
  line?: number;
  /** Dotted config path (`train.learning_rate`) or JSONL field name. */
  field?: string;
}

/** Every method name, for the Python mirror check. */
export const EngineMethods = [
  Initialize,
  Shutdown,
  TrainStart,
  TrainCancel,
  TrainPlan,
  ModelImport,
  ModelExport,
  ModelPull,
  Generate,
  CancelRequest,
  TrainDidStage,
  TrainDidProgress,
  TrainDidEval,
  TrainDidCheckpoint,
  TrainDidEnd,
  ModelDidProgress,
  GenerateDidStream,
] as const;
