/**
 * Evaluate Adapter in the language server: the run's saved config, server/src/eval's evaluation (zero-shot base vs
 * adapter on the test split, ROUGE), progress forwarded as qlora/eval/didProgress (the base model's download as
 * qlora/model/didProgress), the report written to <run-dir>/eval/report.{json,md,html} — the same as
 * `qlora-studio eval --adapter <run-dir>`.
 */
import * as path from 'node:path';
import { Generate } from '../../../protocol/engine';
import * as L from '../../../protocol/lsp';
import { loadConfig } from '../config/load';
import { EvalCancelledError, EvalInputError, prepareEvaluation, runEvaluation, type PreparedEvaluation } from '../eval/evaluate';
import { writeReport } from '../eval/report';
import type { EngineSupervisor } from '../engine-client/supervise';
import { RunFolder } from '../../../protocol/run-folder';
import { downloadNotification, onDownload } from './downloads';
import { problem, problemFromConfig, problemFromError } from './problems';
import type { Notify } from './train';

export type Prepared = { ok: true; prepared: PreparedEvaluation } | { ok: false; problem: L.JobProblem };

/** Reads and checks every input before the engine is asked: config, adapter, split, records. */
export async function prepareRunEvaluation(params: L.EvalStartParams): Promise<Prepared> {
  const configFile = path.join(params.runDir, RunFolder.config);
  const loaded = loadConfig(configFile);
  if (!loaded.ok) return { ok: false, problem: problemFromConfig(loaded.errors, params.runDir) };
  try {
    const prepared = await prepareEvaluation({ config: loaded.config, configFile, adapter: params.runDir, split: 'test', limit: params.limit });
    return { ok: true, prepared };
  } catch (error) {
    if (error instanceof EvalInputError) {
      const where: Partial<L.JobProblem> = {};
      if (error.file) where.file = error.file;
      if (error.line) where.line = error.line;
      if (error.field) where.field = error.field;
      return { ok: false, problem: problem(L.JobErrorCodes.RunNotUsable, error.message, 'Fix the file named here (a completed run and a test split with references are needed), then evaluate again.', where) };
    }
    return { ok: false, problem: problemFromError(error) };
  }
}

/** The evaluation on the engine; the base model's download (a hub model not cached) reported, and `signal` stops it. */
export async function evaluateRun(engine: EngineSupervisor, prepared: PreparedEvaluation, runDir: string, notify: Notify, signal: AbortSignal): Promise<L.EvalStartResult> {
  const downloading = onDownload(engine, prepared.config.model, (d) => notify(L.ModelDidProgress, downloadNotification(runDir, d)));
  try {
    const report = await runEvaluation(
      prepared,
      (params, cancel) => engine.request(Generate, params, cancel),
      (p) => notify(L.EvalDidProgress, { runDir, phase: p.phase, done: p.done, total: p.total }),
      signal,
    );
    const files = writeReport(prepared.outDir, report);
    return { reportPath: files.json, problem: null };
  } catch (error) {
    if (error instanceof EvalCancelledError) return { reportPath: null, problem: problem(L.JobErrorCodes.Cancelled, 'Evaluation cancelled; no report written.', null) };
    if (error instanceof EvalInputError) {
      return { reportPath: null, problem: problem(L.JobErrorCodes.RunNotUsable, error.message, null, { ...(error.file ? { file: error.file } : {}), ...(error.line ? { line: error.line } : {}) }) };
    }
    return { reportPath: null, problem: problemFromError(error) };
  } finally {
    downloading.dispose();
  }
}
