/**
 * `qlora-studio summarize`: a dialogue (a file or stdin) summarized with an adapter, and with --base by the zero-shot
 * base model too. The input binding and the generate request are Summarize Selection's (server/src/summarize/); this
 * file is arguments, the input, engine, Ctrl-C and output.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ResolvedConfig } from '../../../protocol/config';
import type { DownloadProgress } from '../../../protocol/engine';
import { displayPath } from '../config/errors';
import { loadConfig } from '../config/load';
import { resolveAdapter } from '../eval/evaluate';
import { EvalInputError } from '../eval/records';
import { generateSummary, SUMMARY_SEED, type Summary } from '../summarize/generate';
import { bindSummaryInput } from '../summarize/input';
import { downloadKept, ProgressLine } from './output';
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
import { summaryJson, TextSummaryView, type SummaryContext } from './summarize-view';

const usage = `Usage: qlora-studio summarize [<config.yaml>] --adapter <run-dir>/adapter [--file <path> | -] [options]

Summarizes a text with an adapter, as the editor's Summarize Selection does: the text goes into the template's input
variable (the prompt's variable that the response does not use: dialogue for DialogSum) or, for a chat config, into
one user turn through the chat template, and the adapter generates from that prompt. --base also summarizes it with
the zero-shot base model, in the same batch, to compare.

The text is the file's, or stdin's (\`-\`, or anything piped in). On a terminal the summary appears as it is
generated; piped, it is printed once complete. Without <config.yaml>, the run's own config.yaml (the config as run)
is used. A hub model not in the cache yet is downloaded first, with its progress on stderr.

Options:
  --adapter <dir>        the adapter folder (adapter_config.json + adapter_model.safetensors), or a run folder
  --file <path>          the text to summarize (default, or -: stdin)
  --base                 also summarize with the zero-shot base model
  --max-new-tokens <n>   most tokens of a summary (default: eval.max_new_tokens, 100)
  --temperature <t>      0 (default) is greedy; above 0 samples, seeded (${SUMMARY_SEED}), so a run repeats
  --python <path>        Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json                 print one JSON object: the summary (and baseSummary), the prompt, tokens and timings
  --verbose              echo the engine's log (stderr)
  -h, --help             show this help

Ctrl-C stops at once while the base model downloads (what arrived is kept: the next summary resumes the download),
else after the summary in generation; a second Ctrl-C stops the engine at once.
Exit status: 0 done, 1 failed, 2 bad input (the message names the file and field), 130 cancelled.
`;

const options = {
  adapter: { type: 'string' },
  file: { type: 'string' },
  base: { type: 'boolean' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const summarizeCommand: Command = { name: 'summarize', summary: 'summarize a text (a file or stdin) with an adapter', usage, run: runSummarize };

function maxNewTokens(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1) throw new UsageError(`--max-new-tokens must be a whole number of at least 1 (got "${raw}")`);
  return Number(raw);
}

function temperature(raw: string | undefined): number {
  if (raw === undefined) return 0;
  const t = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(t) || t < 0) throw new UsageError(`--temperature must be a number of at least 0 (got "${raw}")`);
  return t;
}

/** The text to summarize: the file's, or stdin's; a BOM and surrounding blank space dropped (a file's last newline). */
async function readInput(file: string | undefined, ctx: CliContext, dash: boolean): Promise<{ text: string; input: string }> {
  let text: string;
  if (file !== undefined) {
    const abs = path.resolve(ctx.cwd, file);
    try {
      text = fs.readFileSync(abs, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new EvalInputError(code === 'ENOENT' ? 'file not found' : `cannot read it (${code ?? (error as Error).message})`, abs, 0, '--file');
    }
    text = text.replace(/^\uFEFF/, '').trim();
    if (!text) throw new EvalInputError('the file is empty: nothing to summarize', abs, 0, '--file');
    return { text, input: abs };
  }
  if (!ctx.stdin || (ctx.stdin.isTTY && !dash)) throw new UsageError('give the text to summarize: --file <path>, or pipe it in (`-` reads stdin)');
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  text = Buffer.concat(chunks).toString('utf8').replace(/^\uFEFF/, '').trim();
  if (!text) throw new EvalInputError('stdin is empty: nothing to summarize (pipe the text in, or pass --file <path>)', null, 0, null);
  return { text, input: '-' };
}

interface Prepared extends SummaryContext {
  config: ResolvedConfig;
}

async function runSummarize(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (!values.adapter) throw new UsageError('missing --adapter <run-dir>/adapter');
  // stdin is `-`, as a positional or as --file's value.
  const file = values.file === '-' ? undefined : values.file;
  const dash = positionals.includes('-') || values.file === '-';
  const configs = positionals.filter((p) => p !== '-');
  if (configs.length > 1) throw new UsageError(`expected at most one config file, got ${configs.length}: ${configs.join(' ')}`);
  if (dash && file !== undefined) throw new UsageError('give --file <path> or - (stdin), not both');
  const limit = maxNewTokens(values['max-new-tokens']);
  const temp = temperature(values.temperature);
  const json = values.json === true;

  let configFile: string | null = null;
  let prepared: Prepared;
  try {
    const { adapter, runDir } = resolveAdapter(path.resolve(ctx.cwd, values.adapter));
    configFile = adapterConfigFile(configs[0], runDir, ctx.cwd);
    const loaded = loadConfig(configFile, { env: ctx.env });
    if (!loaded.ok) return reportConfigErrors(loaded.errors, ctx, json);
    const { text, input } = await readInput(file, ctx, dash);
    const bound = bindSummaryInput(loaded.config, text);
    if ('problem' in bound) throw new EvalInputError(bound.problem.message, bound.problem.file ?? configFile, 0, bound.problem.field ?? null);
    const maxNew = limit ?? loaded.config.eval.max_new_tokens;
    prepared = { config: loaded.config, configFile, adapter, input, bound, maxNewTokens: maxNew, temperature: temp };
  } catch (error) {
    if (error instanceof EvalInputError) return reportInputError(error, ctx, configFile, json);
    throw error;
  }
  return summarizeWithEngine(prepared, ctx, { json, compare: values.base === true, python: values.python, verbose: values.verbose === true });
}

async function summarizeWithEngine(p: Prepared, ctx: CliContext, o: { json: boolean; compare: boolean; python: string | undefined; verbose: boolean }): Promise<number> {
  const started = performance.now();
  const view = new TextSummaryView(ctx.stdout, o.compare ? { adapter: `Adapter (${displayPath(p.adapter, ctx.cwd)})`, base: 'Base model (zero-shot)' } : null);
  const streaming = !o.json && view.streaming;
  const { supervisor, owned } = openEngine(ctx, o.python);
  // The base model's download, drawn as `pull` draws it, on stderr: stdout holds the summary alone.
  const bar = new ProgressLine(ctx.stderr);
  let downloading: DownloadProgress | null = null;
  // Ctrl-C's notes: above the download's bar while it is drawn, below the text streamed so far once there is some.
  const note = (message: string): void => {
    if (streaming) view.interrupt();
    bar.log(message);
  };
  const stderr = supervisor.onStderr((line) => {
    if (o.verbose) ctx.stderr.write(`${line}\n`);
  });
  const interrupts = new Interrupts(ctx, supervisor, note, 'Cancelling...');
  try {
    if (!o.json) {
      const how = p.temperature > 0 ? `temperature ${p.temperature}, seed ${SUMMARY_SEED}` : 'greedy';
      const what = p.input === '-' ? 'stdin' : displayPath(p.input, ctx.cwd);
      ctx.stderr.write(`Summarizing ${what} with ${displayPath(p.adapter, ctx.cwd)}${o.compare ? ' and the base model' : ''} (${how}, at most ${p.maxNewTokens} new tokens)\n`);
    }
    const summary = await generateSummary(
      supervisor,
      { config: p.config, adapter: p.adapter, input: p.bound, maxNewTokens: p.maxNewTokens, temperature: p.temperature, compareWithBase: o.compare, ...(streaming ? { streamId: randomUUID() } : {}) },
      (u) => {
        bar.done();
        view.update(u);
      },
      (d) => {
        downloading = d.bytesDone < d.bytesTotal ? d : null;
        bar.download(d);
      },
      interrupts.signal,
    );
    bar.done();
    if (interrupts.count > 0) return cancelled(ctx, o.json, null, view, streaming);
    const seconds = (performance.now() - started) / 1000;
    if (o.json) writeJson(ctx.stdout, summaryJson(p, summary, seconds));
    else {
      view.finished(summary);
      ctx.stderr.write(`${tokens(summary)}, generated in ${summary.seconds.toFixed(2)} s (${seconds.toFixed(2)} s in all)\n`);
    }
    return ExitCode.Ok;
  } catch (error) {
    bar.done();
    if (interrupts.count > 0) return cancelled(ctx, o.json, downloading, view, streaming);
    if (o.json) writeJson(ctx.stdout, failureJson(error, p.configFile));
    return reportFailure(error, ctx, p.configFile);
  } finally {
    interrupts.dispose();
    stderr.dispose();
    if (owned) await supervisor.shutdown();
  }
}

function tokens(s: Summary): string {
  const base = s.base ? `; the base model's ${s.base.newTokens}` : '';
  return `${s.adapter.newTokens} new token${s.adapter.newTokens === 1 ? '' : 's'}${base}`;
}

function cancelled(ctx: CliContext, json: boolean, downloading: DownloadProgress | null, view: TextSummaryView, streaming: boolean): number {
  if (streaming) view.interrupt();
  if (json) writeJson(ctx.stdout, { event: 'end', status: 'cancelled' });
  else ctx.stderr.write(`Cancelled.${downloading ? ` ${downloadKept(downloading)}` : ''}\n`);
  return ExitCode.Cancelled;
}
