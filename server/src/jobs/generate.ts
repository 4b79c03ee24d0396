/**
 * Summarize Selection: the run's own config and adapter, the selected text bound to its template or chat template
 * (summarize/input.ts) and generated greedily (summarize/generate.ts, shared with `qlora-studio summarize`) with the
 * run's adapter and, when asked, with the base model for comparison.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../protocol/config';
import type { DownloadProgress } from '../../../protocol/engine';
import * as L from '../../../protocol/lsp';
import { loadConfig } from '../config/load';
import type { EngineSupervisor } from '../engine-client/supervise';
import { AdapterConfigFile, RunFolder } from '../../../protocol/run-folder';
import { generateSummary } from '../summarize/generate';
import { bindSummaryInput } from '../summarize/input';
import { problem, problemFromConfig, problemFromError } from './problems';

export interface RunForGeneration {
  config: ResolvedConfig;
  adapter: string;
}

export function runForGeneration(runDir: string): { ok: true; run: RunForGeneration } | { ok: false; problem: L.JobProblem } {
  const configFile = path.join(runDir, RunFolder.config);
  if (!fs.existsSync(configFile)) {
    return { ok: false, problem: problem(L.JobErrorCodes.RunNotUsable, `${runDir} has no ${RunFolder.config}; is it a run folder?`, 'Pick a completed run.') };
  }
  const adapter = path.join(runDir, RunFolder.adapter);
  if (!fs.existsSync(path.join(adapter, AdapterConfigFile))) {
    return {
      ok: false,
      problem: problem(L.JobErrorCodes.RunNotUsable, `The run ${path.basename(runDir)} has no adapter yet (it is written when training completes).`, 'Pick a completed run, or wait for this one to finish.'),
    };
  }
  const loaded = loadConfig(configFile);
  if (!loaded.ok) return { ok: false, problem: problemFromConfig(loaded.errors, runDir) };
  return { ok: true, run: { config: loaded.config, adapter } };
}

/**
 * Summarizes the selection; with params.streamId, `stream` gets the text as it is generated; `download` gets the bytes
 * while the base model downloads (a hub model not in the cache), which `signal` stops (the bytes that arrived are
 * kept for the next summary).
 */
export async function summarize(
  engine: EngineSupervisor,
  params: L.GenerateSummarizeParams,
  stream: (update: L.GenerateDidStreamParams) => void = () => {},
  download: (progress: DownloadProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<L.GenerateSummarizeResult> {
  const none = { variable: null, prompt: null, adapter: null, base: null, seconds: 0 };
  const found = runForGeneration(params.runDir);
  if (!found.ok) return { ...none, problem: found.problem };
  const { config, adapter } = found.run;
  const bound = bindSummaryInput(config, params.text);
  if ('problem' in bound) return { ...none, problem: bound.problem };
  try {
    const summary = await generateSummary(
      engine,
      { config, adapter, input: bound, maxNewTokens: params.maxNewTokens, temperature: 0, compareWithBase: params.compareWithBase, ...(params.streamId ? { streamId: params.streamId } : {}) },
      stream,
      download,
      signal,
    );
    return { variable: bound.variable, prompt: bound.prompt, adapter: summary.adapter, base: summary.base, seconds: summary.seconds, problem: null };
  } catch (error) {
    const cancelled = signal?.aborted ? problem(L.JobErrorCodes.Cancelled, 'Summary cancelled.', null) : null;
    return { ...none, variable: bound.variable, prompt: bound.prompt, problem: cancelled ?? problemFromError(error) };
  }
}
