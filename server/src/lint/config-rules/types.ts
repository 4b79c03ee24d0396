import type { Document } from 'yaml';
import type { ResolvedConfig } from '../../../../protocol/config';
import type { LintDiagnostic, Span } from '../types';

export interface ConfigLintInput {
  file: string;
  /** Validated, defaults filled, paths absolute (server/src/config). */
  config: ResolvedConfig;
  doc: Document;
  /** Range of the value at a config path (the nearest existing parent when absent). */
  rangeOf(segments: readonly (string | number)[]): Span;
  /** The model's config.json, when found locally, and where; or why not. */
  modelConfig: { json: Record<string, unknown>; dir: string } | { reason: string };
  /** The model's local folder (or Hugging Face cache snapshot), null when there is none. */
  modelDir: string | null;
  /** Whether a CUDA GPU is present, and how that was determined. */
  cuda: { available: boolean; how: string };
}

export interface ConfigRule {
  id: string;
  codes: readonly string[];
  check(input: ConfigLintInput, report: (d: LintDiagnostic) => void): void;
}
