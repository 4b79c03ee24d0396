/**
 * One summary generated: the bound input sent to the engine with an adapter (and, to compare, the base model in the
 * same batch: two rows, one decoding loop), its text streamed as it grows and the base model's download reported.
 * Summarize Selection (jobs/generate.ts) and `qlora-studio summarize` (cli/summarize.ts) both ask through here;
 * engine failures are thrown as they come, for each front end to word its own way.
 */
import type { ResolvedConfig } from '../../../protocol/config';
import { Generate, GenerateDidStream, type Completion, type DownloadProgress, type GenerateParams } from '../../../protocol/engine';
import type * as L from '../../../protocol/lsp';
import type { EngineSupervisor } from '../engine-client/supervise';
import { onDownload } from '../jobs/downloads';
import type { BoundInput } from './input';

export interface SummaryRequest {
  config: ResolvedConfig;
  /** The PEFT adapter folder. */
  adapter: string;
  input: BoundInput;
  maxNewTokens: number;
  /** 0: greedy (the editor's); above 0 samples, seeded, so the same request gives the same text. */
  temperature: number;
  compareWithBase: boolean;
  /** Stream the text while it is generated: `stream` gets updates with this id. */
  streamId?: string;
}

export interface Summary {
  adapter: Completion;
  /** With compareWithBase: the zero-shot base model's summary of the same input. */
  base: Completion | null;
  /** Generation only (the engine's count), not the model's load or download. */
  seconds: number;
}

/** The seed for a sampled summary (temperature > 0). */
export const SUMMARY_SEED = 42;

/**
 * With request.streamId, `stream` gets each side's text so far; `download` gets the bytes while the base model
 * downloads (a hub model not in the cache), which `signal` stops (the bytes that arrived are kept for the next time).
 */
export async function generateSummary(
  engine: EngineSupervisor,
  request: SummaryRequest,
  stream: (update: L.GenerateDidStreamParams) => void = () => {},
  download: (progress: DownloadProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<Summary> {
  const { streamId } = request;
  const params: GenerateParams = {
    config: request.config,
    adapter: request.adapter,
    records: [request.input.record],
    maxNewTokens: request.maxNewTokens,
    temperature: request.temperature,
    topP: 1,
    seed: SUMMARY_SEED,
    batchSize: 1,
    alsoBase: request.compareWithBase,
    ...(streamId ? { streamId } : {}),
  };
  const streaming = streamId
    ? engine.onNotification(GenerateDidStream, (u) => {
        if (u.streamId === streamId) stream({ streamId, base: u.base, text: u.text, done: u.done });
      })
    : null;
  const downloading = onDownload(engine, request.config.model, download);
  try {
    const result = await engine.request(Generate, params, signal);
    const adapter = result.completions[0];
    if (!adapter) throw new Error('the engine answered the summary with no completion');
    return { adapter, base: request.compareWithBase ? (result.baseCompletions?.[0] ?? null) : null, seconds: result.seconds };
  } finally {
    streaming?.dispose();
    downloading.dispose();
  }
}
