/** "Export Merged Model…": a run's adapter merged into its base model by the engine (model/export), with progress. */
import * as fs from 'node:fs';
import { ModelDidProgress, ModelExport } from '../../../protocol/engine';
import * as L from '../../../protocol/lsp';
import type { EngineSupervisor } from '../engine-client/supervise';
import { runForGeneration, type RunForGeneration } from './generate';
import { problem, problemFromError } from './problems';
import type { Notify } from './train';

/** The run's config and adapter, or why it cannot be exported (checked before the engine is asked). */
export function exportTarget(params: L.ModelExportParams): ReturnType<typeof runForGeneration> {
  if (fs.existsSync(params.out)) {
    return { ok: false, problem: problem(L.JobErrorCodes.RunNotUsable, `${params.out} already exists; nothing is overwritten.`, 'Choose a new folder for the merged model.', { file: params.out }) };
  }
  return runForGeneration(params.runDir);
}

/** Asks the engine to merge `run`'s adapter (from exportTarget) into `params.out`, forwarding its progress. */
export async function exportRun(engine: EngineSupervisor, params: L.ModelExportParams, run: RunForGeneration, notify: Notify): Promise<L.ModelExportResult> {
  const progress = engine.onNotification(ModelDidProgress, (p) => notify(L.ModelDidProgress, { runDir: params.runDir, stage: p.stage }));
  try {
    const exported = await engine.request(ModelExport, { config: run.config, adapter: run.adapter, out: params.out, dtype: params.dtype });
    return { exported, problem: null };
  } catch (error) {
    return { exported: null, problem: problemFromError(error) };
  } finally {
    progress.dispose();
  }
}
