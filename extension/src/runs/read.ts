/**
 * Reads run folders (named and typed in protocol/run-folder.ts) into what the Runs view and the dashboard show:
 * run.json (through the server's registry), metrics.jsonl, config.yaml and eval/report.json. Pure Node (no
 * 'vscode'), so unit tests run it on fixture folders.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { AdapterConfigFile, EvalFolder, RunFolder, type BestCheckpoint, type EvalReport } from '../../../protocol/run-folder';
import { listRuns, readRun, type RunEntry } from '../../../server/src/runs/registry';
import type { ConfigSummary, EvalPoint, ReportView, RunData, RunInfo, RunStatus, TrainPoint } from '../../../protocol/webview';

export const ReportFile = path.join(RunFolder.eval, EvalFolder.json);

export interface Metrics {
  train: TrainPoint[];
  eval: EvalPoint[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
/** A list of numbers (each GPU's memory), or null when it is anything else. */
const nums = (v: unknown): number[] | null => (Array.isArray(v) && v.every((x) => num(x) !== null) ? (v as number[]) : null);

/**
 * metrics.jsonl -> points sorted by step. A resumed run logs again the steps after its checkpoint: the last
 * line for a step wins, so a chart has one point per logged step. Unparsable lines (a write cut short) are skipped.
 */
export function parseMetrics(text: string): Metrics {
  const train = new Map<number, TrainPoint>();
  const evals = new Map<number, EvalPoint>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let o: Record<string, unknown>;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (typeof parsed !== 'object' || parsed === null) continue;
      o = parsed as Record<string, unknown>;
    } catch {
      continue;
    }
    const step = num(o.step);
    if (step === null) continue;
    if (o.type === 'eval') {
      const evalLoss = num(o.evalLoss);
      if (evalLoss !== null) evals.set(step, { step, evalLoss });
    } else if (o.type === 'train' || o.type === undefined) {
      train.set(step, {
        step,
        loss: num(o.loss),
        learningRate: num(o.learningRate),
        gradNorm: num(o.gradNorm),
        tokensPerSecond: num(o.tokensPerSecond),
        gpuMemoryBytes: num(o.gpuMemoryBytes),
        gpuMemoryPerDevice: nums(o.gpuMemoryPerDevice),
        elapsedSeconds: num(o.elapsedSeconds),
      });
    }
  }
  const byStep = <T extends { step: number }>(m: Map<number, T>): T[] => [...m.values()].sort((a, b) => a.step - b.step);
  return { train: byStep(train), eval: byStep(evals) };
}

export function readMetrics(runDir: string): Metrics {
  try {
    return parseMetrics(fs.readFileSync(path.join(runDir, RunFolder.metrics), 'utf8'));
  } catch {
    return { train: [], eval: [] };
  }
}

export function summarizeConfig(text: string): ConfigSummary | null {
  let c: Record<string, unknown>;
  try {
    const parsed = parseYaml(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return null;
    c = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const lora = obj(c.lora);
  const train = obj(c.train);
  const data = obj(c.data);
  return {
    model: str(c.model) ?? '?',
    quantization: str(c.quantization) ?? 'nf4',
    loraR: num(lora.r),
    loraAlpha: num(lora.alpha),
    targetModules: Array.isArray(lora.target_modules) ? lora.target_modules.map(String) : [],
    maxLength: num(c.max_length),
    maxSteps: num(train.max_steps),
    devices: num(train.devices),
    microBatchSize: num(train.micro_batch_size),
    gradientAccumulation: num(train.gradient_accumulation),
    learningRate: num(train.learning_rate),
    optimizer: str(train.optimizer),
    train: str(data.train),
    template: str(c.template),
  };
}

export function readConfigSummary(runDir: string): ConfigSummary | null {
  try {
    return summarizeConfig(fs.readFileSync(path.join(runDir, RunFolder.config), 'utf8'));
  } catch {
    return null;
  }
}

/** runs/<id>/eval/report.json (EvalReport, as `qlora-studio eval` writes it) -> the dashboard's table; null if unreadable. */
export function parseReport(text: string): ReportView | null {
  let r: Partial<EvalReport>;
  try {
    r = JSON.parse(text) as Partial<EvalReport>;
  } catch {
    return null;
  }
  if (typeof r !== 'object' || r === null || !Array.isArray(r.metrics) || !Array.isArray(r.examples)) return null;
  const metrics: ReportView['metrics'] = [];
  for (const m of r.metrics) {
    const base = num(m?.base);
    const adapter = num(m?.adapter);
    if (typeof m?.name === 'string' && base !== null && adapter !== null) metrics.push({ name: m.name, base, adapter });
  }
  const text_ = (v: unknown): string => (typeof v === 'string' ? v : '');
  const samples = r.examples.map((e) => ({
    input: text_(e?.input),
    reference: text_(e?.references?.[0]),
    base: text_(e?.base?.text),
    adapter: text_(e?.adapter?.text),
  }));
  return { split: typeof r.split === 'string' ? r.split : 'test', examples: num(r.count) ?? samples.length, metrics, samples };
}

export function readReport(runDir: string): ReportView | null {
  try {
    return parseReport(fs.readFileSync(path.join(runDir, ReportFile), 'utf8'));
  } catch {
    return null;
  }
}

function statusOf(entry: RunEntry, live: boolean): RunStatus {
  const s = entry.record?.status;
  if (live) return 'running';
  if (s === 'completed' || s === 'cancelled' || s === 'failed') return s;
  // run.json says running but no process of ours trains it: an interrupted run (resumable when it has a checkpoint).
  if (s === 'running') return 'unknown';
  return 'pending';
}

const BestLabels: Record<BestCheckpoint['metric'], string> = { eval_loss: 'eval loss', rouge1: 'ROUGE-1', rouge2: 'ROUGE-2', rougeL: 'ROUGE-L', rougeLsum: 'ROUGE-Lsum' };

/**
 * The run's best: run.json's `best` (by train.best_metric, the checkpoint best-adapter/ holds) when the run has
 * one — what the CLI shows too; otherwise the lowest validation loss, or the lowest training loss.
 */
export function bestOf(record: RunEntry['record'], metrics: Metrics): RunInfo['best'] {
  if (record?.best) return { name: record.best.metric, label: BestLabels[record.best.metric] ?? record.best.metric, value: record.best.value, step: record.best.step };
  let best: RunInfo['best'] = null;
  for (const p of metrics.eval) if (!best || p.evalLoss < best.value) best = { name: 'evalLoss', label: 'eval loss', value: p.evalLoss, step: p.step };
  if (best) return best;
  for (const p of metrics.train) if (p.loss !== null && (!best || p.loss < best.value)) best = { name: 'loss', label: 'loss', value: p.loss, step: p.step };
  return best;
}

export function runInfo(entry: RunEntry, metrics: Metrics = readMetrics(entry.dir), live = false): RunInfo {
  const r = entry.record;
  const best = bestOf(r, metrics);
  const lastStep = metrics.train.at(-1)?.step ?? 0;
  return {
    runId: r?.runId ?? entry.id,
    runDir: entry.dir,
    status: statusOf(entry, live),
    step: Math.max(r?.step ?? 0, lastStep),
    totalSteps: r?.totalSteps ?? 0,
    startedAt: r?.startedAt ?? null,
    endedAt: r?.endedAt ?? null,
    error: r?.error ? r.error.message : entry.problem,
    best,
    hasAdapter: fs.existsSync(path.join(entry.dir, RunFolder.adapter, AdapterConfigFile)),
    hasReport: fs.existsSync(path.join(entry.dir, ReportFile)),
    stopReason: r?.stopReason ?? null,
  };
}

/** Every run in `runsDir`, newest first; `live` names runs the server is training now. */
export function listRunInfos(runsDir: string, live: ReadonlySet<string> = new Set()): RunInfo[] {
  return listRuns(runsDir).map((e) => runInfo(e, readMetrics(e.dir), live.has(e.dir)));
}

export function readRunData(runDir: string, live = false): RunData {
  const entry = readRun(runDir);
  const metrics = readMetrics(runDir);
  return {
    info: runInfo(entry, metrics, live),
    config: readConfigSummary(runDir),
    train: metrics.train,
    eval: metrics.eval,
    etaSeconds: null,
    report: readReport(runDir),
  };
}

/** The newest completed run with an adapter (the default for Summarize and Evaluate). */
export function latestCompleted(runs: readonly RunInfo[]): RunInfo | null {
  return runs.find((r) => r.status === 'completed' && r.hasAdapter) ?? null;
}
