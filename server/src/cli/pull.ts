/** `qlora-studio pull`: a hub model downloaded into the Hugging Face cache, resumably, before anything uses it. */
import { ModelDidProgress, ModelPull, type DownloadProgress } from '../../../protocol/engine';
import { formatBytes } from '../../../protocol/format';
import { displayPath } from '../config/errors';
import { isPathLike } from '../config/load';
import { downloadKept, ProgressLine } from './output';
import { ExitCode, failureJson, openEngine, parseCommandArgs, reportFailure, UsageError, writeJson, type CliContext, type Command } from './subcommand';

const usage = `Usage: qlora-studio pull <hub-id> [options]

Download a model from the Hugging Face hub into its cache: config, tokenizer, chat template and the safetensors
weights, what training needs (never pickled *.bin weights). Files already in the cache are not fetched again; an
interrupted download (Ctrl-C, a lost connection) resumes where it stopped. train, eval and Summarize Selection download
a hub model the same way when it is not in the cache yet; pull first to do it on a good connection, or before going
offline (HF_HUB_OFFLINE=1).

The hub is $HF_ENDPOINT (default https://huggingface.co), the cache $HF_HUB_CACHE (default ~/.cache/huggingface/hub).
A gated model needs its license accepted on its page and a token: $HF_TOKEN, or \`huggingface-cli login\`.

Options:
  --revision <rev>   branch, tag or commit (default: the model's default branch)
  --python <path>    Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json             print progress and the result as JSON lines
  -h, --help         show this help
`;

const options = {
  revision: { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const pullCommand: Command = { name: 'pull', summary: 'download a hub model into the cache (resumable)', usage, run: runPull };

async function runPull(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one hub id, got ${positionals.length}`);
  const model = positionals[0]!;
  if (isPathLike(model) || !/^[\w.-]+(\/[\w.-]+)?$/.test(model)) {
    throw new UsageError(`"${model}" is not a hub id (owner/name, as on the model's page); a local folder needs no pull`);
  }
  const json = values.json === true;
  const { supervisor, owned } = openEngine(ctx, values.python);
  const line = new ProgressLine(ctx.stderr);
  let last: DownloadProgress | null = null;
  const progress = supervisor.onNotification(ModelDidProgress, (p) => {
    if (!p.download) return;
    last = p.download;
    if (json) writeJson(ctx.stdout, { event: 'progress', ...p.download });
    else line.download(p.download);
  });
  // Ctrl-C stops the download within a chunk (the engine ignores SIGINT); what arrived stays for the next pull.
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  ctx.signals.on('SIGINT', onSigint);
  try {
    const result = await supervisor.request(ModelPull, { model, ...(values.revision ? { revision: values.revision } : {}) }, abort.signal);
    line.done();
    if (json) writeJson(ctx.stdout, { event: 'pulled', ...result });
    else {
      const count = Object.keys(result.files).length;
      const fetched = result.downloadedBytes > 0 ? `${formatBytes(result.downloadedBytes)} downloaded` : 'all already in the cache';
      ctx.stdout.write(
        `Pulled ${model} @ ${result.commit.slice(0, 12)} → ${displayPath(result.folder, ctx.cwd)}\n` +
          `  ${count} files, ${formatBytes(result.bytes)} (${fetched})\n` +
          `Use it in a config: model: ${model}\n`,
      );
    }
    return ExitCode.Ok;
  } catch (error) {
    line.done();
    if (abort.signal.aborted) {
      if (json) writeJson(ctx.stdout, { event: 'end', status: 'cancelled' });
      else ctx.stderr.write(`Cancelled.${last ? ` ${downloadKept(last)}` : ''}\n`);
      return ExitCode.Cancelled;
    }
    if (json) writeJson(ctx.stdout, failureJson(error));
    return reportFailure(error, ctx);
  } finally {
    ctx.signals.off('SIGINT', onSigint);
    progress.dispose();
    if (owned) await supervisor.shutdown();
  }
}
