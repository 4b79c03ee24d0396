/**
 * `qlora-studio eval`: zero-shot base vs adapter on a split, ROUGE with intervals, report.{json,md,html}.
 * The work is server/src/eval/evaluate.ts (shared with the extension); this file is arguments, engine, Ctrl-C and
 * output.
 */
import * as path from 'node:path';
import { Generate, ModelDidProgress, type DownloadProgress } from '../../../protocol/engine';
import { loadConfig } from '../config/load';
import { EvalCancelledError, prepareEvaluation, resolveAdapter, runEvaluation, type PreparedEvaluation } from '../eval/evaluate';
import { EvalInputError } from '../eval/records';
import { writeReport, type EvalSplit } from '../eval/report';
import {
  adapterConfigFile,
  ExitCode,
  failureJson,
  Interrupts,
  openEngine,
  parseCommandArgs,
  reportConfigErrors,
  reportFailure,
  reportInputError,
  UsageError,
  writeJson,
  type CliContext,
  type Command,
} from './subcommand';
import { JsonEvalView, TextEvalView, type EvalView } from './eval-view';
import { downloadKept } from './output';

const usage = `Usage: qlora-studio eval [<config.yaml>] --adapter <run-dir>/adapter [options]

Generates for every record of a split with the zero-shot base model and with the adapter (same prompts, greedy,
the same settings; one base model loaded, the adapter switched on and off), scores both with ROUGE-1/2/L/Lsum
against all of each record's references (rouge_score 0.1.2's numbers, Porter stemmer on) and writes
report.json, report.md and report.html: the table (mean F, bootstrap 95% interval, improvement) and every example
side by side.

The references are the config's eval.references, or by default the template response's variable and its numbered
variants found in the records (summary, summary1, summary2, ...: DialogSum's test split has summary1..summary3).
Chat records (data.format messages, sharegpt, alpaca) are prompted with the conversation up to their last
assistant turn, through the chat template, and scored against that turn.
Without <config.yaml>, the run's own config.yaml (the config as run) is used.

Options:
  --adapter <dir>        the adapter folder (adapter_config.json + adapter_model.safetensors), or a run folder
  --split <name>         test (default), validation or train: the config's data.<split> file
  --limit <n>            score only the first n records (default: all)
  --max-new-tokens <n>   most tokens per generation (default: eval.max_new_tokens, 100)
  --batch-size <n>       records per generation batch (default: eval.batch_size, 8)
  --out <dir>            where the report goes (default: <run-dir>/eval; eval-<name> for another adapter folder)
  --python <path>        Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json                 one JSON object per line per event; the last is {"event":"end",...}
  --verbose              echo the engine's log (stderr)
  -h, --help             show this help

Ctrl-C stops after the batch in flight, or at once while the base model downloads (what arrived is kept: the next
eval resumes the download); a second Ctrl-C stops the engine at once.
Exit status: 0 done, 1 failed, 2 bad input (the message names the file, line and field), 130 cancelled.
`;

const options = {
  adapter: { type: 'string' },
  split: { type: 'string' },
  limit: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  'batch-size': { type: 'string' },
  out: { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SPLITS: readonly EvalSplit[] = ['test', 'validation', 'train'];

export const evalCommand: Command = { name: 'eval', summary: 'ROUGE of the zero-shot base vs an adapter, with a report', usage, run: runEval };

function integer(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`${flag} must be a whole number (got "${raw}")`);
  return Number(raw);
}

async function runEval(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (!values.adapter) throw new UsageError('missing --adapter <run-dir>/adapter');
  if (positionals.length > 1) throw new UsageError(`expected at most one config file, got ${positionals.length}: ${positionals.join(' ')}`);
  const split = (values.split ?? 'test') as EvalSplit;
  if (!SPLITS.includes(split)) throw new UsageError(`--split must be one of ${SPLITS.join(', ')} (got "${values.split}")`);
  const json = values.json === true;
  const view: EvalView = json ? new JsonEvalView(ctx.stdout) : new TextEvalView(ctx.stdout, ctx.cwd);
  let configFile: string | null = null;
  const fail = (error: EvalInputError): number => reportInputError(error, ctx, configFile, json);

  let prepared: PreparedEvaluation;
  try {
    const { runDir } = resolveAdapter(path.resolve(ctx.cwd, values.adapter));
    configFile = adapterConfigFile(positionals[0], runDir, ctx.cwd);
    const loaded = loadConfig(configFile, { env: ctx.env });
    if (!loaded.ok) return reportConfigErrors(loaded.errors, ctx, json);
    prepared = await prepareEvaluation({
      config: loaded.config,
      configFile,
      adapter: path.resolve(ctx.cwd, values.adapter),
      split,
      limit: integer('--limit', values.limit),
      maxNewTokens: integer('--max-new-tokens', values['max-new-tokens']),
      batchSize: integer('--batch-size', values['batch-size']),
      outDir: values.out ? path.resolve(ctx.cwd, values.out) : undefined,
      env: ctx.env,
    });
  } catch (error) {
    if (error instanceof EvalInputError) return fail(error);
    throw error;
  }

  const { supervisor, owned } = openEngine(ctx, values.python);
  const stderr = supervisor.onStderr((line) => {
    if (values.verbose) ctx.stderr.write(`${line}\n`);
  });
  let downloading: DownloadProgress | null = null; // the base model's download, until its last byte
  const download = supervisor.onNotification(ModelDidProgress, (p) => {
    if (!p.download) return;
    downloading = p.download.bytesDone < p.download.bytesTotal ? p.download : null;
    view.download(p.download);
  });
  const interrupts = new Interrupts(ctx, supervisor, (message) => view.note(message), 'Cancelling after the batch in flight...');
  try {
    view.started(prepared);
    if (!supervisor.running && !json) view.note('Starting the engine...');
    const report = await runEvaluation(prepared, (params, signal) => supervisor.request(Generate, params, signal), (p) => view.progress(p), interrupts.signal);
    const files = writeReport(prepared.outDir, report);
    view.finished(report, files);
    return ExitCode.Ok;
  } catch (error) {
    view.stopped();
    if (error instanceof EvalCancelledError || interrupts.count > 0) {
      if (json) writeJson(ctx.stdout, { event: 'end', status: 'cancelled' });
      else ctx.stderr.write(`Cancelled; no report written.${downloading ? ` ${downloadKept(downloading)}` : ''}\n`);
      return ExitCode.Cancelled;
    }
    if (error instanceof EvalInputError) return fail(error);
    if (json) writeJson(ctx.stdout, failureJson(error, configFile ?? undefined));
    return reportFailure(error, ctx, configFile ?? undefined);
  } finally {
    interrupts.dispose();
    stderr.dispose();
    download.dispose();
    if (owned) await supervisor.shutdown();
  }
}
