/**
 * run/failed: the last training run of a config failed; the diagnostic sits on the config line that fixes it,
 * with a quick fix where one is obvious. It stays until the config changes or a run of it completes.
 *
 *   diverged (NaN/inf)   -> the field the engine named (train.learning_rate or compute_dtype); fix: halve the rate
 *   out of memory        -> train.micro_batch_size (or the nearest written train key); fix: checkpointing on
 *   anything with a field (model not found, bad data file, ...) -> that field
 */
import { isScalar, type Document } from 'yaml';
import { ErrorCodes } from '../../../protocol/engine';
import type { Fix, LintDiagnostic, Span } from './types';

type RangeOf = (segments: readonly (string | number)[]) => Span;

const FieldByCode: Partial<Record<number, string>> = {
  [ErrorCodes.OutOfMemory]: 'train.micro_batch_size',
  [ErrorCodes.TrainingDiverged]: 'train.learning_rate',
};

/** The last run of this config failed: where its cause is fixed (diagnosed here). */
export interface RunFailure {
  runId: string;
  code: number;
  message: string;
  /** Dotted config field the engine named (train.learning_rate), if any. */
  field?: string | null;
}

export function runFailureDiagnostic(failure: RunFailure, doc: Document, rangeOf: RangeOf): LintDiagnostic {
  const field = failure.field ?? FieldByCode[failure.code] ?? null;
  const segments = field ? field.split('.') : [];
  const range = rangeOf(segments);
  const fixes: Fix[] = [];
  const written = (path: string[]): { value: unknown; range: Span } | null => {
    const node = doc.getIn(path, true);
    return isScalar(node) && node.range ? { value: node.value, range: rangeOf(path) } : null;
  };
  if (failure.code === ErrorCodes.TrainingDiverged) {
    const rate = written(['train', 'learning_rate']);
    if (rate && typeof rate.value === 'number' && rate.value > 0) {
      const half = Number((rate.value / 2).toPrecision(3));
      fixes.push({ title: `Halve train.learning_rate (${rate.value} → ${half})`, edits: [{ range: rate.range, newText: String(half) }] });
    }
  } else if (failure.code === ErrorCodes.OutOfMemory) {
    const ckpt = written(['train', 'gradient_checkpointing']);
    if (ckpt && ckpt.value !== true) fixes.push({ title: 'Set train.gradient_checkpointing: true', edits: [{ range: ckpt.range, newText: 'true' }] });
    const batch = written(['train', 'micro_batch_size']);
    if (batch && typeof batch.value === 'number' && batch.value > 1) {
      fixes.push({ title: `Halve train.micro_batch_size (${batch.value} → ${Math.floor(batch.value / 2)})`, edits: [{ range: batch.range, newText: String(Math.floor(batch.value / 2)) }] });
    }
  }
  return {
    range,
    severity: 'error',
    code: 'run/failed',
    message: `run ${failure.runId} failed${field ? ` (${field})` : ''}: ${failure.message.split('\n')[0]}`,
    ...(fixes.length ? { fixes } : {}),
  };
}
