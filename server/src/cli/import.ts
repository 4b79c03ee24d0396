/** `qlora-studio import`: a GGUF file → a transformers model folder that `model:` in a config can name. */
import * as path from 'node:path';
import { ModelImport } from '../../../protocol/engine';
import { displayPath } from '../config/errors';
import { ExitCode, failureJson, followModelProgress, openEngine, parseCommandArgs, reportFailure, UsageError, writeJson, type CliContext, type Command } from './subcommand';
import { formatBytes, formatCount } from '../../../protocol/format';

const usage = `Usage: qlora-studio import <model.gguf> --out <folder> [options]

Convert a GGUF model (llama, phi3, qwen2, mistral, gemma and the other architectures transformers reads) into a
transformers folder: float32 safetensors weights, config, tokenizer and chat template. The folder records the
file's SHA-256; importing the same file again does nothing.

Options:
  --out <folder>     where to write the model (absent, empty, or an earlier import, which is replaced)
  --python <path>    Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json             print progress and the result as JSON lines
  -h, --help         show this help
`;

const options = {
  out: { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const importCommand: Command = { name: 'import', summary: 'convert a GGUF model into a model folder', usage, run: runImport };

async function runImport(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one .gguf file, got ${positionals.length}`);
  if (!values.out) throw new UsageError('--out <folder> is required');
  const source = path.resolve(ctx.cwd, positionals[0]!);
  const out = path.resolve(ctx.cwd, values.out);
  const { supervisor, owned } = openEngine(ctx, values.python);
  const progress = followModelProgress(supervisor, ctx, values.json === true);
  try {
    const result = await supervisor.request(ModelImport, { source, out });
    if (values.json) writeJson(ctx.stdout, { event: 'imported', ...result });
    else {
      const size = Object.values(result.files).reduce((a, b) => a + b, 0);
      const verb = result.skipped ? 'Already imported' : 'Imported';
      ctx.stdout.write(
        `${verb} ${displayPath(source, ctx.cwd)} → ${displayPath(out, ctx.cwd)}\n` +
          `  ${result.architecture} → ${result.modelType}, ${formatCount(result.parameters)} parameters, ${result.dtype}, ${formatBytes(size)} in ${Object.keys(result.files).length} files\n` +
          `  GGUF tensor types ${result.tensorTypes.join(', ')}; sha256 ${result.sha256}\n` +
          `Use it in a config: model: ${displayPath(out, ctx.cwd)}\n`,
      );
    }
    return ExitCode.Ok;
  } catch (error) {
    if (values.json) writeJson(ctx.stdout, failureJson(error));
    return reportFailure(error, ctx);
  } finally {
    progress.dispose();
    if (owned) await supervisor.shutdown();
  }
}
