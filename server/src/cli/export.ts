/** `qlora-studio export`: a run's adapter merged into its base model, as a folder that loads without peft. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelExport, type ModelExportParams } from '../../../protocol/engine';
import { formatBytes, formatCount } from '../../../protocol/format';
import { RunFolder } from '../../../protocol/run-folder';
import { displayPath } from '../config/errors';
import { loadConfig } from '../config/load';
import { EvalInputError, resolveAdapter } from '../eval/evaluate';
import { ExitCode, failureJson, followModelProgress, openEngine, parseCommandArgs, reportConfigErrors, reportFailure, UsageError, writeJson, type CliContext, type Command } from './subcommand';

const usage = `Usage: qlora-studio export <run-dir | adapter-dir> --merged <folder> [options]

Merge a run's LoRA adapter into its base model and write one transformers folder (safetensors weights, config,
tokenizer, chat template) that AutoModelForCausalLM.from_pretrained loads without peft. A run trained on a 4-bit
base is merged into the base's original weights, loaded without quantization in --dtype. Nothing is overwritten:
the folder must not exist, and it appears only when complete (qlora-export.json records what was merged).

Options:
  --merged <folder>   where to write the merged model (must not exist)
  --dtype <type>      bf16 (default), fp16 or fp32
  --python <path>     Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json              print progress and the result as JSON lines
  -h, --help          show this help
`;

const options = {
  merged: { type: 'string' },
  dtype: { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DTYPES: Record<string, ModelExportParams['dtype']> = { bf16: 'bfloat16', fp16: 'float16', fp32: 'float32' };

export const exportCommand: Command = { name: 'export', summary: "merge a run's adapter into its base model", usage, run: runExport };

async function runExport(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one run folder (or its adapter folder), got ${positionals.length}`);
  if (!values.merged) throw new UsageError('--merged <folder> is required');
  const dtype = DTYPES[values.dtype ?? 'bf16'];
  if (!dtype) throw new UsageError(`--dtype must be bf16, fp16 or fp32 (got ${values.dtype})`);
  const out = path.resolve(ctx.cwd, values.merged);
  if (fs.existsSync(out)) throw new UsageError(`--merged ${displayPath(out, ctx.cwd)} already exists; choose a new folder (nothing is overwritten)`);
  let adapter: string;
  let runDir: string | null;
  try {
    ({ adapter, runDir } = resolveAdapter(path.resolve(ctx.cwd, positionals[0]!)));
  } catch (error) {
    if (error instanceof EvalInputError) throw new UsageError(error.message);
    throw error;
  }
  const configFile = runDir ? path.join(runDir, RunFolder.config) : null;
  if (!configFile || !fs.existsSync(configFile)) {
    throw new UsageError(`${displayPath(adapter, ctx.cwd)} is not inside a run folder with ${RunFolder.config}; pass the run folder`);
  }
  const loaded = loadConfig(configFile, { env: ctx.env });
  if (!loaded.ok) return reportConfigErrors(loaded.errors, ctx, values.json === true);
  const { supervisor, owned } = openEngine(ctx, values.python);
  const progress = followModelProgress(supervisor, ctx, values.json === true);
  try {
    const result = await supervisor.request(ModelExport, { config: loaded.config, adapter, out, dtype });
    if (values.json) writeJson(ctx.stdout, { event: 'exported', ...result });
    else {
      const size = Object.values(result.files).reduce((a, b) => a + b, 0);
      ctx.stdout.write(
        `Exported ${displayPath(adapter, ctx.cwd)} merged into ${result.base} → ${displayPath(out, ctx.cwd)}\n` +
          `  ${formatCount(result.parameters)} parameters, ${result.dtype}, ${formatBytes(size)} in ${Object.keys(result.files).length} files; base weights: ${result.baseWeights}\n` +
          `Load it with AutoModelForCausalLM.from_pretrained("${out}"), or name it as model: in a config.\n`,
      );
    }
    return ExitCode.Ok;
  } catch (error) {
    if (values.json) writeJson(ctx.stdout, failureJson(error, configFile));
    return reportFailure(error, ctx, configFile);
  } finally {
    progress.dispose();
    if (owned) await supervisor.shutdown();
  }
}
