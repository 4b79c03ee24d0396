/**
 * The fine-tune config (finetune.yaml) as the engine receives it: every default filled in and every path
 * absolute. Field names are the YAML's (snake_case) so a user's file and the wire read the same.
 * The JSON Schema in schemas/finetune.schema.json is the source of truth for ranges and defaults.
 */
export type Quantization = 'nf4' | 'fp4' | 'int8' | 'none';
export type ComputeDtype = 'auto' | 'bfloat16' | 'float16' | 'float32';
export type Optimizer = 'adamw_torch' | 'adamw_torch_fused' | 'paged_adamw_8bit';
export type LrScheduler = 'linear' | 'cosine' | 'constant';
export type LossOn = 'response' | 'all';
/** The metric train.best_metric keeps the best checkpoint by: lowest validation loss, or highest ROUGE F. */
export type BestMetric = 'eval_loss' | 'rouge1' | 'rouge2' | 'rougeL' | 'rougeLsum';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  target_modules: string[];
}

export interface DataConfig {
  /** Absolute path of the training JSONL. */
  train: string;
  /** Absolute path, or null: then `validation_split` of train is held out (seeded). */
  validation: string | null;
  test: string | null;
  /** Fraction of train held out for validation when `validation` is null (0 disables eval). */
  validation_split: number;
  /**
   * How records become text (docs/chat-datasets.md): the prompt template, or a chat format rendered by the chat
   * template. Resolved configs never hold `auto`: loading reads it off `template` or the first training record.
   */
  format: DataFormat;
}

export type ChatFormat = 'messages' | 'sharegpt' | 'alpaca';
export type DataFormat = 'template' | ChatFormat;
export const CHAT_FORMATS: readonly ChatFormat[] = ['messages', 'sharegpt', 'alpaca'];

/** End training once `metric` has not improved by more than min_delta for `patience` evaluations in a row. */
export interface EarlyStopping {
  metric: BestMetric;
  patience: number;
  min_delta: number;
}

export interface TrainConfig {
  /** Optimizer steps (with `epochs`, the engine computes it: config.yaml of the run records the value). */
  max_steps: number;
  /** Passes over the training rows instead of max_steps; null: max_steps decides. */
  epochs: number | null;
  early_stopping: EarlyStopping | null;
  /** Rows per micro-batch, or 'auto' (as many max_length rows as one forward pass holds in free GPU memory). */
  /** Training processes, one per GPU, data parallel (docs/distributed.md); 'auto': every visible GPU. */
  devices: number | 'auto';
  /** How several processes share the model: ddp (each the whole model) or fsdp (the base sharded); 'auto': fsdp when one GPU cannot train it. */
  strategy: 'auto' | 'ddp' | 'fsdp';
  micro_batch_size: number | 'auto';
  gradient_accumulation: number;
  learning_rate: number;
  lr_scheduler: LrScheduler;
  warmup_steps: number;
  weight_decay: number;
  max_grad_norm: number;
  optimizer: Optimizer;
  /** 'auto': off when the plan fits free GPU memory without it. */
  gradient_checkpointing: boolean | 'auto';
  /** Run a step's records as few unpadded forward passes as tokens_per_pass allows (varlen attention). */
  token_batching: boolean;
  /** Token budget of one forward pass with token_batching, or 'auto' (from the plan and free GPU memory). */
  tokens_per_pass: number | 'auto';
  /** Trained positions per lm_head + cross-entropy chunk (0: one chunk). */
  loss_chunk: number;
  /** Upcast non-quantized weights to fp32 as peft's k-bit preparation does; 'auto': only with float16 compute. */
  fp32_upcast: boolean | 'auto';
  /** Consecutive steps with a non-finite loss or gradient norm (each skipped) that end the run failed. */
  max_nonfinite_steps: number;
  /** torch.compile each decoder layer (CUDA): fused kernels; the first step compiles. 'auto': CUDA + Triton. */
  compile: boolean | 'auto';
  /** Replay each training pass as a CUDA graph (passes padded to shared lengths). 'auto': CUDA, checkpointing off. */
  cuda_graphs: boolean | 'auto';
  /** Hold 4-bit base weights dequantized once, in the compute dtype (the same values). 'auto': one GPU with room. */
  dense_base: boolean | 'auto';
  /** float32 matrix products (the LoRA weights') on TF32 tensor cores. */
  tf32: boolean;
  /** Optimizer steps between evaluations (0: never). */
  eval_every: number;
  /** Validation batches per evaluation (0: the whole validation set). */
  eval_batches: number;
  /** Optimizer steps between checkpoints (0: only at the end and on cancel). */
  save_every: number;
  log_every: number;
  /** Checkpoints kept on disk (oldest removed first); at least 1. */
  keep_checkpoints: number;
  seed: number;
  /** Optimizer steps between ROUGE evaluations on validation records (0: never); also at the last step. */
  rouge_every: number;
  /** Validation records (the first ones) generated for and scored at each ROUGE evaluation. */
  rouge_samples: number;
  /** Keep the best checkpoint (and best-adapter/) by this metric; null: off. */
  best_metric: BestMetric | null;
}

export interface EvalConfig {
  /**
   * Record fields holding reference texts (a prediction is scored against all of them). null: the template
   * response's variable and its numbered variants found in the records (summary, summary1, summary2, ...).
   */
  references: string[] | null;
  /** Most tokens generated per record. */
  max_new_tokens: number;
  /** Records per generation batch. */
  batch_size: number;
}

export interface LogConfig {
  /** TensorBoard event files in <run-dir>/tensorboard. */
  tensorboard: boolean;
}

export interface ResolvedConfig {
  /** Hub id or absolute path of a local model folder. */
  model: string;
  trust_remote_code: boolean;
  quantization: Quantization;
  double_quant: boolean;
  compute_dtype: ComputeDtype;
  lora: LoraConfig;
  data: DataConfig;
  /** Absolute path of the prompt template (YAML with `prompt` and `response` Jinja parts); null for chat data. */
  template: string | null;
  /** Absolute path of a chat template (Jinja) in place of the model's own; chat data only. */
  chat_template: string | null;
  max_length: number;
  loss_on: LossOn;
  packing: boolean;
  train: TrainConfig;
  eval: EvalConfig;
  log: LogConfig;
}
