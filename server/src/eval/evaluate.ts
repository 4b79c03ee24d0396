/**
 * The evaluation core, shared by `qlora-studio eval` and the VS Code extension: zero-shot generations of the base
 * model and generations with the adapter, on the same prompts with the same greedy settings, through the
 * engine's `generate` request (adapter null, then the adapter: the engine keeps one base model loaded and switches
 * the adapter on and off on it), scored with ROUGE (rouge.ts, rouge_score 0.1.2's numbers, stemmer on) against all
 * references of each record, aggregated as the mean F with a seeded bootstrap interval.
 *
 *   const prepared = await prepareEvaluation({ config, configFile, adapter, split: 'test', limit: 50 });
 *   const report = await runEvaluation(prepared, (p) => supervisor.request(Generate, p), onProgress, signal);
 *   writeReport(prepared.outDir, report);
 *
 * prepareEvaluation reads and checks everything before the engine is asked for anything: a missing adapter folder,
 * a split the config does not have or that has no records, invalid JSON, records lacking prompt fields or
 * references are EvalInputErrors naming the file, line and field. Prompts longer than max_length (counted with the
 * model's tokenizer, as the engine counts them) are skipped and listed in the report, never silently.
 * runEvaluation generates in chunks of records, longest prompts first (schedule.ts: batches of similar length waste
 * little on padding), and puts each completion back at its record's index; progress after each chunk, cancellation
 * checked between chunks and passed to the chunk in flight (the first one's base model may be downloading).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../protocol/config';
import { ErrorCodes, type Completion, type GenerateParams, type GenerateResult } from '../../../protocol/engine';
import { AdapterConfigFile, RunFolder } from '../../../protocol/run-folder';
import { EngineError } from '../engine-client/rpc';
import { loadTokenizer } from '../tokenizer/load';
import { bootstrapAggregate, meanScores } from './aggregate';
import { EvalInputError, readRecords, type DataRecord } from './records';
import { METRICS, REPORT_VERSION, type EvalReport, type EvalSplit, type ExampleRow, type MetricName, type Prediction } from './report';
import { RougeScorer, type Score } from './rouge';
import { chunksOf, lengthOrder } from './schedule';
import { evalTexts } from './texts';

export { EvalInputError } from './records';

export interface EvaluateOptions {
  config: ResolvedConfig;
  /** The config file the config came from (for messages and the report); null when it came from elsewhere. */
  configFile?: string | null;
  /** The adapter folder, or a run folder holding adapter/. */
  adapter: string;
  split?: EvalSplit;
  /** Score the first `limit` records of the split (0: all). */
  limit?: number;
  /** Default: the config's eval.max_new_tokens. */
  maxNewTokens?: number;
  /** Default: the config's eval.batch_size. */
  batchSize?: number;
  /** Records per generate request, i.e. per progress update (default: the batch size). */
  chunkSize?: number;
  /** Where the report goes (default: <run-dir>/eval, see defaultReportDir). */
  outDir?: string;
  bootstrapSamples?: number;
  seed?: number;
  env?: NodeJS.ProcessEnv;
}

export interface EvalProgress {
  phase: 'base' | 'adapter' | 'scoring';
  /** Records done in this phase. */
  done: number;
  total: number;
}

/** One generate request; `signal` cancels it in flight (the engine stops a download of the base model). */
export type GenerateFn = (params: GenerateParams, signal?: AbortSignal) => Promise<GenerateResult>;

export class EvalCancelledError extends Error {
  override readonly name = 'EvalCancelledError';
  constructor() {
    super('evaluation cancelled');
  }
}

export interface PreparedEvaluation {
  config: ResolvedConfig;
  configFile: string | null;
  adapter: string;
  runDir: string | null;
  outDir: string;
  split: EvalSplit;
  dataFile: string;
  /** Records in the split file. */
  totalRecords: number;
  /** The records to score (first `limit`, minus the skipped). */
  records: DataRecord[];
  inputs: string[];
  references: string[][];
  referenceFields: string[];
  skipped: { line: number; promptTokens: number }[];
  /** Indices of `records` in generation order: longest prompt first (tokens, or characters without a tokenizer). */
  order: number[];
  stop: string[];
  /** The prompt template, or the chat template, the prompts were rendered with. */
  templateFile: string;
  maxNewTokens: number;
  batchSize: number;
  chunkSize: number;
  bootstrapSamples: number;
  seed: number;
}

const REQUIRED_ADAPTER_FILES = [AdapterConfigFile, 'adapter_model.safetensors'];

/** The adapter folder for `--adapter` (an adapter, or a run folder with adapter/) and its run folder, if any. */
export function resolveAdapter(arg: string): { adapter: string; runDir: string | null } {
  const dir = path.resolve(arg);
  if (!isDir(dir)) throw new EvalInputError(`adapter folder not found: ${dir}`, dir, 0, '--adapter');
  const complete = (d: string): boolean => REQUIRED_ADAPTER_FILES.every((f) => isFile(path.join(d, f)));
  let adapter = dir;
  if (!complete(dir)) {
    if (complete(path.join(dir, RunFolder.adapter))) adapter = path.join(dir, RunFolder.adapter);
    else if (isFile(path.join(dir, RunFolder.record))) {
      throw new EvalInputError(`run ${path.basename(dir)} has no complete adapter/ (did its training complete?); pass --adapter <run-dir>/adapter of a completed run`, dir, 0, '--adapter');
    } else {
      const missing = REQUIRED_ADAPTER_FILES.filter((f) => !isFile(path.join(dir, f)));
      throw new EvalInputError(`${dir} is not a PEFT adapter folder: ${missing.join(' and ')} missing`, dir, 0, '--adapter');
    }
  }
  const parent = path.dirname(adapter);
  const runDir = isFile(path.join(parent, RunFolder.record)) || isFile(path.join(parent, RunFolder.config)) ? parent : null;
  return { adapter, runDir };
}

/** <run-dir>/eval for <run-dir>/adapter; <run-dir>/eval-<name> for another adapter folder of the run (best-adapter). */
export function defaultReportDir(adapter: string, runDir: string | null): string {
  const parent = runDir ?? path.dirname(adapter);
  const name = path.basename(adapter);
  return path.join(parent, name === RunFolder.adapter ? RunFolder.eval : `${RunFolder.eval}-${name}`);
}

function splitFile(config: ResolvedConfig, split: EvalSplit): string {
  const file = split === 'train' ? config.data.train : config.data[split];
  if (file) return file;
  const other = split === 'test' && config.data.validation ? ', or pass --split validation' : '';
  throw new EvalInputError(`the config has no data.${split} file to evaluate on; set data.${split}${other}`, null, 0, `data.${split}`);
}

/** Reads and checks every input; throws EvalInputError (file, line, field) for a known problem. */
export async function prepareEvaluation(options: EvaluateOptions): Promise<PreparedEvaluation> {
  const { config } = options;
  const configFile = options.configFile ?? null;
  const { adapter, runDir } = resolveAdapter(options.adapter);
  const split = options.split ?? 'test';
  const limit = options.limit ?? 0;
  const maxNewTokens = options.maxNewTokens ?? config.eval.max_new_tokens;
  const batchSize = options.batchSize ?? config.eval.batch_size;
  for (const [flag, value] of [['--limit', limit], ['--max-new-tokens', maxNewTokens], ['--batch-size', batchSize]] as const) {
    if (!Number.isInteger(value) || value < (flag === '--limit' ? 0 : 1)) {
      throw new EvalInputError(`must be ${flag === '--limit' ? 'a whole number >= 0' : 'a whole number >= 1'} (got ${value})`, null, 0, flag);
    }
  }
  const dataFile = splitFile(config, split);
  const all = readRecords(dataFile, `data.${split}`);
  if (all.length === 0) throw new EvalInputError(`${path.basename(dataFile)} has no records (one JSON object per line)`, dataFile, 0, `data.${split}`);
  const chosen = limit > 0 ? all.slice(0, limit) : all;
  const texts = evalTexts(config, chosen, dataFile);
  const prompts = texts.prompts;

  const counted = await promptTokens(config, configFile, prompts, options.env);
  const keep = chosen.map((_, i) => counted === null || counted[i]! <= config.max_length);
  const skipped = chosen.flatMap((r, i) => (keep[i] ? [] : [{ line: r.line, promptTokens: counted![i]! }]));
  const records = chosen.filter((_, i) => keep[i]);
  if (records.length === 0) {
    throw new EvalInputError(`every prompt is longer than max_length=${config.max_length} tokens; raise max_length`, dataFile, skipped[0]?.line ?? 0, 'max_length');
  }
  return {
    config,
    configFile,
    adapter,
    runDir,
    outDir: options.outDir ? path.resolve(options.outDir) : defaultReportDir(adapter, runDir),
    split,
    dataFile,
    totalRecords: all.length,
    records,
    inputs: texts.inputs.filter((_, i) => keep[i]),
    references: texts.references.filter((_, i) => keep[i]),
    referenceFields: texts.referenceFields,
    skipped,
    order: lengthOrder(chosen.flatMap((_, i) => (keep[i] ? [counted === null ? prompts[i]!.length : counted[i]!] : []))),
    stop: texts.stop,
    templateFile: texts.templateFile,
    maxNewTokens,
    batchSize,
    chunkSize: Math.max(1, options.chunkSize ?? batchSize),
    bootstrapSamples: options.bootstrapSamples ?? 1000,
    seed: options.seed ?? 0,
  };
}

/** Prompt token counts with the model's tokenizer (null when it cannot be loaded here: the engine still checks). */
async function promptTokens(config: ResolvedConfig, configFile: string | null, prompts: string[], env?: NodeJS.ProcessEnv): Promise<number[] | null> {
  const loaded = await loadTokenizer(config.model, configFile ? path.dirname(configFile) : process.cwd(), env ?? process.env);
  if (!loaded.ok) return null;
  const bos = loaded.tokenizer.bosId === null ? 0 : 1;
  return prompts.map((p) => bos + loaded.tokenizer.count(p));
}

/** Generates (base, then adapter), scores and returns the report; throws EvalCancelledError when `signal` aborts. */
export async function runEvaluation(
  prepared: PreparedEvaluation,
  generate: GenerateFn,
  onProgress: (progress: EvalProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<EvalReport> {
  const started = Date.now();
  const phases = { base: null as string | null, adapter: prepared.adapter } as const;
  const outputs: Record<'base' | 'adapter', Completion[]> = { base: [], adapter: [] };
  const seconds = { base: 0, adapter: 0 };
  const generating = { base: 0, adapter: 0 };
  const loading = { base: 0, adapter: 0 };
  for (const phase of ['base', 'adapter'] as const) {
    const t0 = Date.now();
    const result = await generateAll(prepared, phases[phase], generate, (done) => onProgress({ phase, done, total: prepared.records.length }), signal);
    outputs[phase] = result.completions;
    generating[phase] = result.seconds;
    loading[phase] = result.loadSeconds;
    seconds[phase] = (Date.now() - t0) / 1000;
  }
  onProgress({ phase: 'scoring', done: 0, total: prepared.records.length });
  const scorer = new RougeScorer({ useStemmer: true });
  const score = (text: string, refs: string[]): Record<MetricName, Score> => (refs.length === 1 ? scorer.score(refs[0]!, text) : scorer.scoreMulti(refs, text));
  const perBase = outputs.base.map((c, i) => score(c.text, prepared.references[i]!));
  const perAdapter = outputs.adapter.map((c, i) => score(c.text, prepared.references[i]!));
  const bootstrap = { nSamples: prepared.bootstrapSamples, seed: prepared.seed, confidenceInterval: 0.95 };
  const [meanBase, meanAdapter] = [meanScores(perBase), meanScores(perAdapter)];
  const [bootBase, bootAdapter] = [bootstrapAggregate(perBase, bootstrap), bootstrapAggregate(perAdapter, bootstrap)];
  onProgress({ phase: 'scoring', done: prepared.records.length, total: prepared.records.length });

  const prediction = (c: Completion, s: Record<MetricName, Score>): Prediction => ({
    text: c.text,
    promptTokens: c.promptTokens,
    newTokens: c.newTokens,
    rouge: Object.fromEntries(METRICS.map((m) => [m, s[m].fmeasure])) as Record<MetricName, number>,
  });
  const examples: ExampleRow[] = prepared.records.map((r, i) => ({
    index: i,
    line: r.line,
    input: prepared.inputs[i]!,
    references: prepared.references[i]!,
    base: prediction(outputs.base[i]!, perBase[i]!),
    adapter: prediction(outputs.adapter[i]!, perAdapter[i]!),
  }));
  return {
    version: REPORT_VERSION,
    createdAt: new Date().toISOString(),
    runDir: prepared.runDir,
    runId: prepared.runDir ? path.basename(prepared.runDir) : null,
    adapter: prepared.adapter,
    model: prepared.config.model,
    configFile: prepared.configFile,
    template: prepared.templateFile,
    split: prepared.split,
    dataFile: prepared.dataFile,
    count: examples.length,
    records: prepared.totalRecords,
    skipped: prepared.skipped,
    referenceFields: prepared.referenceFields,
    generation: { maxNewTokens: prepared.maxNewTokens, batchSize: prepared.batchSize, temperature: 0, topP: 1, seed: 0, stop: prepared.stop },
    rouge: {
      package: 'rouge_score 0.1.2 (server/src/eval/rouge.ts)',
      useStemmer: true,
      splitSummaries: false,
      bootstrap: { samples: prepared.bootstrapSamples, confidence: 0.95, seed: prepared.seed },
    },
    metrics: METRICS.map((name) => ({
      name,
      base: meanBase[name].fmeasure,
      adapter: meanAdapter[name].fmeasure,
      improvement: meanAdapter[name].fmeasure - meanBase[name].fmeasure,
      baseInterval: { low: bootBase[name].low.fmeasure, high: bootBase[name].high.fmeasure },
      adapterInterval: { low: bootAdapter[name].low.fmeasure, high: bootAdapter[name].high.fmeasure },
      baseScore: meanBase[name],
      adapterScore: meanAdapter[name],
    })),
    examples,
    seconds: { ...seconds, total: (Date.now() - started) / 1000 },
    generating,
    loading,
  };
}

/** prepareEvaluation + runEvaluation. */
export async function evaluate(
  generate: GenerateFn,
  options: EvaluateOptions,
  onProgress?: (progress: EvalProgress) => void,
  signal?: AbortSignal,
): Promise<EvalReport> {
  return runEvaluation(await prepareEvaluation(options), generate, onProgress, signal);
}

async function generateAll(
  prepared: PreparedEvaluation,
  adapter: string | null,
  generate: GenerateFn,
  progress: (done: number) => void,
  signal?: AbortSignal,
): Promise<{ completions: Completion[]; seconds: number; loadSeconds: number }> {
  const out: Completion[] = new Array<Completion>(prepared.records.length);
  let done = 0;
  let seconds = 0; // the engine's own time per request: loading the model is not part of it
  let loadSeconds = 0;
  progress(0);
  for (const indices of chunksOf(prepared.order, prepared.chunkSize)) {
    if (signal?.aborted) throw new EvalCancelledError();
    const chunk = indices.map((i) => prepared.records[i]!);
    let result: GenerateResult;
    try {
      result = await generate(
        {
          config: prepared.config,
          adapter,
          records: chunk.map((r) => r.fields),
          maxNewTokens: prepared.maxNewTokens,
          temperature: 0,
          topP: 1,
          seed: 0,
          batchSize: prepared.batchSize,
        },
        signal,
      );
    } catch (error) {
      if (signal?.aborted) throw new EvalCancelledError(); // stopped in flight (RequestCancelled), or failed as it did
      throw locateRecordError(error, chunk, prepared.dataFile);
    }
    if (result.completions.length !== chunk.length) {
      throw new Error(`the engine returned ${result.completions.length} completions for ${chunk.length} records`);
    }
    indices.forEach((index, k) => (out[index] = result.completions[k]!));
    seconds += result.seconds;
    loadSeconds += result.loadSeconds ?? 0;
    done += indices.length;
    progress(done);
  }
  return { completions: out, seconds, loadSeconds };
}

/** A BadDataset about `records[i]` of a request, pointed at the record's line in the split file. */
function locateRecordError(error: unknown, chunk: readonly DataRecord[], file: string): unknown {
  if (!(error instanceof EngineError) || error.code !== ErrorCodes.BadDataset || error.data.file || !error.data.line) return error;
  const record = chunk[error.data.line - 1];
  if (!record) return error;
  return new EvalInputError(error.message.replace(/^records\[\d+\]: /, ''), file, record.line, error.data.field ?? null);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
