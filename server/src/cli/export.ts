/** `qlora-studio export`: a run's adapter merged into its base model, as a folder that loads without peft or as one
 * GGUF file for llama.cpp. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelExport, type GgufQuant, type MergedDtype } from '../../../protocol/engine';
import { formatBytes, formatCount } from '../../../protocol/format';
import { RunFolder } from '../../../protocol/run-folder';
import { displayPath } from '../config/errors';
import { loadConfig } from '../config/load';
import { EvalInputError, resolveAdapter } from '../eval/evaluate';
import { ExitCode, failureJson, followModelProgress, openEngine, parseCommandArgs, reportConfigErrors, reportFailure, UsageError, writeJson, type CliContext, type Command } from './subcommand';

const usage = `Usage: qlora-studio export <run-dir | adapter-dir> (--merged <folder> | --gguf <file>) [options]

Merge a run's LoRA adapter into its base model and write it out:
  --merged  one transformers folder (safetensors weights, config, tokenizer, chat template) that
            AutoModelForCausalLM.from_pretrained loads without peft; qlora-export.json records what was merged.
  --gguf    one GGUF file for llama.cpp, Ollama, LM Studio and the like (llama and phi2 model families): llama.cpp's
            tensor names and metadata, the tokenizer and its chat template inside; weights in --quant.
A run trained on a 4-bit base is merged into the base's original weights, loaded without quantization. Nothing is
overwritten: the target must not exist, and it appears only when complete.

Options:
  --merged <folder>   where to write the merged model (must not exist)
  --dtype <type>      with --merged: bf16 (default), fp16 or fp32
  --gguf <file>       where to write the GGUF file (must not exist)
  --quant <type>      with --gguf: f16 (default) or q8_0 (8-bit, about half the size)
  --python <path>     Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json              print progress and the result as JSON lines
  -h, --help          show this help
`;

const options = {
  merged: { type: 'string' },
  dtype: { type: 'string' },
  gguf: { type: 'string' },
  quant: { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DTYPES: Record<string, MergedDtype> = { bf16: 'bfloat16', fp16: 'float16', fp32: 'float32' };
const QUANTS: readonly GgufQuant[] = ['f16', 'q8_0'];

export const exportCommand: Command = { name: 'export', summary: "merge a run's adapter into its base model", usage, run: runExport };

async function runExport(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one run folder (or its adapter folder), got ${positionals.length}`);
  const target = exportTarget(values);
  const out = path.resolve(ctx.cwd, target.path);
  if (fs.existsSync(out)) throw new UsageError(`--${target.flag} ${displayPath(out, ctx.cwd)} already exists; choose a new ${target.flag === 'gguf' ? 'file' : 'folder'} (nothing is overwritten)`);
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
    const result = await supervisor.request(ModelExport, { config: loaded.config, adapter, out, ...target.params });
    if (values.json) writeJson(ctx.stdout, { event: 'exported', ...result });
    else {
      const size = Object.values(result.files).reduce((a, b) => a + b, 0);
      const gguf = target.flag === 'gguf';
      ctx.stdout.write(
        `Exported ${displayPath(adapter, ctx.cwd)} merged into ${result.base} → ${displayPath(out, ctx.cwd)}\n` +
          `  ${formatCount(result.parameters)} parameters, ${result.dtype}${gguf ? ` GGUF (${result.architecture})` : ''}, ${formatBytes(size)} in ${Object.keys(result.files).length} file${gguf ? '' : 's'}; base weights: ${result.baseWeights}\n` +
          (gguf
            ? `Run it with llama.cpp: llama-cli -m "${out}", or import it into Ollama or LM Studio.\n`
            : `Load it with AutoModelForCausalLM.from_pretrained("${out}"), or name it as model: in a config.\n`),
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

type ExportTarget =
  | { flag: 'merged'; path: string; params: { format: 'merged'; dtype: MergedDtype } }
  | { flag: 'gguf'; path: string; params: { format: 'gguf'; quant: GgufQuant } };

/** Exactly one of --merged and --gguf, with the option that belongs to it. */
function exportTarget(values: { merged?: string; dtype?: string; gguf?: string; quant?: string }): ExportTarget {
  if (values.merged !== undefined && values.gguf !== undefined) throw new UsageError('give --merged <folder> or --gguf <file>, not both');
  if (values.gguf !== undefined) {
    if (values.dtype !== undefined) throw new UsageError('--dtype goes with --merged; a GGUF file takes --quant f16 or q8_0');
    const quant = (values.quant ?? 'f16') as GgufQuant;
    if (!QUANTS.includes(quant)) throw new UsageError(`--quant must be f16 or q8_0 (got ${values.quant})`);
    return { flag: 'gguf', path: values.gguf, params: { format: 'gguf', quant } };
  }
  if (values.merged === undefined) throw new UsageError('--merged <folder> or --gguf <file> is required');
  if (values.quant !== undefined) throw new UsageError('--quant goes with --gguf; a merged folder takes --dtype bf16, fp16 or fp32');
  const dtype = DTYPES[values.dtype ?? 'bf16'];
  if (!dtype) throw new UsageError(`--dtype must be bf16, fp16 or fp32 (got ${values.dtype})`);
  return { flag: 'merged', path: values.merged, params: { format: 'merged', dtype } };
}
