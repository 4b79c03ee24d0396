/** Turns what can go wrong in a job into a JobProblem: a message the user can act on, and what to do. */
import { ErrorCodes } from '../../../protocol/engine';
import { JobErrorCodes, type JobProblem } from '../../../protocol/lsp';
import type { ConfigError } from '../config/errors';
import { howToFix, PythonNotFoundError } from '../engine/python';
import { EngineError } from '../engine/rpc';
import { EngineCrashedError } from '../engine/supervise';
import { repoRoot } from '../engine/paths';
import { UntrustedWorkspaceError } from './engine';

const fixes: Partial<Record<number, string>> = {
  [ErrorCodes.OutOfMemory]: 'Lower train.micro_batch_size or max_length, turn on train.gradient_checkpointing, or use quantization: nf4.',
  [ErrorCodes.BitsAndBytesMissing]: 'Install bitsandbytes in the engine environment (Set Up Engine Environment), or set quantization: none to train on the CPU.',
  [ErrorCodes.CudaUnavailable]: 'No CUDA GPU is visible to the engine. Use a config with quantization: none (e.g. samples/dialogsum/tiny.yaml) to train on the CPU, or install a CUDA build of torch.',
  [ErrorCodes.ModelNotFound]: 'Set `model` to a local model folder, or allow downloads (unset HF_HUB_OFFLINE) so the hub id can be fetched.',
  [ErrorCodes.BadDataset]: 'Fix the JSONL record named here (the Problems panel lists dataset problems), then start again.',
  [ErrorCodes.BadConfig]: 'Fix the config field named here, then start again.',
  [ErrorCodes.BadTemplate]: 'Fix the prompt template (the Problems panel shows where), then start again.',
  [ErrorCodes.CheckpointNotFound]: 'This run has no checkpoint to resume from; start a new run instead.',
  [ErrorCodes.WriteFailed]: 'Free disk space (or fix the folder’s permissions), then resume: the last complete checkpoint is intact.',
  [ErrorCodes.CheckpointDamaged]: 'Move the damaged checkpoint folder named here out of checkpoints/ and resume again: the run continues from the previous one.',
  [ErrorCodes.TrainingDiverged]: 'Lower train.learning_rate (or raise warmup_steps); with compute_dtype float16, use bfloat16 if the GPU has it. Resume continues from the last checkpoint.',
  [ErrorCodes.BadModelFile]: 'Use a complete .gguf file (compare its size or SHA-256 with the source) of a supported architecture; a quantization type named here cannot be dequantized by the installed gguf package.',
  [ErrorCodes.Busy]: 'The engine is busy with another job; wait for it to end or cancel it.',
};

export function problem(code: number, message: string, fix: string | null = fixes[code] ?? null, where: Partial<JobProblem> = {}): JobProblem {
  return { code, message, fix, ...where };
}

export function problemFromError(error: unknown): JobProblem {
  if (error instanceof UntrustedWorkspaceError) {
    return problem(JobErrorCodes.Untrusted, error.message, 'Trust this folder (Manage Workspace Trust) to train, evaluate or summarize; linting works without it.');
  }
  if (error instanceof PythonNotFoundError) {
    let fix: string;
    try {
      fix = `${howToFix(repoRoot())} Or run “QLoRA Studio: Set Up Engine Environment”, or set the qloraStudio.pythonPath setting.`;
    } catch {
      fix = 'Run “QLoRA Studio: Set Up Engine Environment”, or set the qloraStudio.pythonPath setting to a Python with torch.';
    }
    return problem(JobErrorCodes.NoPython, error.message, fix);
  }
  if (error instanceof EngineError) {
    const where: Partial<JobProblem> = {};
    if (error.file) where.file = error.file;
    if (error.line) where.line = error.line;
    if (error.field) where.field = error.field;
    return problem(error.code, error.message, fixes[error.code] ?? null, where);
  }
  if (error instanceof EngineCrashedError) {
    return problem(
      JobErrorCodes.EngineFailed,
      error.message,
      'See the engine log (QLoRA Studio output). A missing package shows there; “Set Up Engine Environment” installs them.',
    );
  }
  return problem(JobErrorCodes.EngineFailed, error instanceof Error ? error.message : String(error), null);
}

export function problemFromConfig(errors: readonly ConfigError[], cwd: string): JobProblem {
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''})` : '';
  const where: Partial<JobProblem> = {};
  if (first.file) where.file = first.file;
  if (first.line) where.line = first.line;
  if (first.field) where.field = first.field;
  return problem(JobErrorCodes.ConfigInvalid, first.format(cwd) + more, 'Fix the config (its problems are also in the Problems panel), then start again.', where);
}
