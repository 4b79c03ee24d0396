/** `qlora-studio plan`: the engine's memory estimate for a config, against the GPU's free memory. */
import * as path from 'node:path';
import { TrainPlan, type TrainPlanResult } from '../../../protocol/engine';
import type { ResolvedConfig } from '../../../protocol/config';
import { displayPath } from '../config/errors';
import { loadConfig, parseOverrideNumber, type ConfigOverride } from '../config/load';
import {
  ExitCode,
  failureJson,
  openEngine,
  parseCommandArgs,
  reportConfigErrors,
  reportFailure,
  UsageError,
  writeJson,
  type CliContext,
  type Command,
} from './subcommand';
import { formatBytes, formatCount } from '../../../protocol/format';
import { table } from './output';

const usage = `Usage: qlora-studio plan <config.yaml> [options]

Estimate the peak GPU memory of a fine-tune (largest terms first, with and without gradient checkpointing)
and compare it with the GPU's free memory, without loading the model.

Options:
  --micro-batch-size <n>   override train.micro_batch_size
  --python <path>          Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json                   print the engine's estimate as one JSON object
  -h, --help               show this help
`;

const options = {
  'micro-batch-size': { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const planCommand: Command = { name: 'plan', summary: 'estimate the GPU memory a config needs', usage, run: runPlan };

async function runPlan(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one config file, got ${positionals.length}`);
  const overrides: ConfigOverride[] = [];
  if (values['micro-batch-size'] !== undefined) {
    const value = parseOverrideNumber(values['micro-batch-size']);
    overrides.push({ field: 'train.micro_batch_size', value, flag: '--micro-batch-size' });
  }
  const loaded = loadConfig(path.resolve(ctx.cwd, positionals[0]!), { overrides, env: ctx.env });
  if (!loaded.ok) return reportConfigErrors(loaded.errors, ctx, values.json === true);
  const { supervisor, owned } = openEngine(ctx, values.python);
  try {
    const plan = await supervisor.request(TrainPlan, { config: loaded.config });
    if (values.json) writeJson(ctx.stdout, plan);
    else ctx.stdout.write(formatPlan(plan, loaded.config, displayPath(loaded.file, ctx.cwd)));
    return ExitCode.Ok;
  } catch (error) {
    if (values.json) writeJson(ctx.stdout, failureJson(error, loaded.file));
    return reportFailure(error, ctx, loaded.file);
  } finally {
    if (owned) await supervisor.shutdown();
  }
}

export function formatPlan(plan: TrainPlanResult, config: ResolvedConfig, name: string): string {
  const t = config.train;
  const p = plan.picks;
  const auto = (value: unknown) => (value === 'auto' ? 'auto → ' : '');
  const lines = [
    `Memory plan for ${name}: ${config.model}, quantization ${config.quantization}, LoRA r=${config.lora.r}, ` +
      `up to ${p.tokensPerPass.toLocaleString('en-US')} tokens per forward pass`,
    `  parameters: ${formatCount(plan.baseParameters)} base (frozen), ${formatCount(plan.loraParameters)} LoRA (trained)`,
    `  settings: micro_batch_size ${auto(t.micro_batch_size)}${p.microBatchSize}, gradient_checkpointing ` +
      `${auto(t.gradient_checkpointing)}${p.gradientCheckpointing}, compile ${auto(t.compile)}${p.compile}, ` +
      `cuda_graphs ${auto(t.cuda_graphs)}${p.cudaGraphs}, dense_base ${auto(t.dense_base)}${p.denseBase}` +
      (plan.devices > 1 ? `, strategy ${auto(t.strategy)}${p.strategy}` : '') + ` (${p.reason})`,
    '',
  ];
  const terms = [...plan.terms].sort((a, b) => b.bytes - a.bytes);
  const rows = [['term', 'memory', 'detail'], ...terms.map((term) => [term.name, formatBytes(term.bytes), term.detail])];
  lines.push(table(rows, { indent: '  ', right: [1] }), '');
  const on = p.gradientCheckpointing;
  const how = t.gradient_checkpointing === 'auto' ? ' (picked)' : ' (configured)';
  const peaks = [
    [`peak, gradient checkpointing on${on ? how : ''}`, formatBytes(plan.peakBytesWithCheckpointing)],
    [`peak, gradient checkpointing off${on ? '' : how}`, formatBytes(plan.peakBytesWithoutCheckpointing)],
  ];
  lines.push(table(peaks, { indent: '  ', right: [1] }));
  if (plan.devices > 1 && p.strategy === 'fsdp') {
    lines.push(`  FSDP over ${plan.devices} devices (train.strategy fsdp): the base model's weights are sharded ${plan.devices} ways, so the peak is per GPU; every step's rows are split ${plan.devices} ways`);
    if (plan.loadBytes !== undefined) lines.push(`  loading: each GPU holds the whole base model (${formatBytes(plan.loadBytes)}) before sharding it`);
  } else if (plan.devices > 1) {
    lines.push(`  data parallel over ${plan.devices} devices (train.devices): each holds the whole model, so the peak is per GPU; every step's rows are split ${plan.devices} ways`);
  }
  if (plan.device) {
    const d = plan.device;
    const loading = plan.peakBytes <= d.freeMemory && plan.loadBytes !== undefined && plan.loadBytes > d.freeMemory;
    const verdict = plan.fits
      ? `fits (${formatBytes(d.freeMemory - plan.peakBytes)} to spare)`
      : loading
        ? `does NOT fit: loading the whole base model is ${formatBytes(plan.loadBytes! - d.freeMemory)} short`
        : `does NOT fit: ${formatBytes(plan.peakBytes - d.freeMemory)} short` +
          (on || plan.peakBytesWithCheckpointing > d.freeMemory ? '; lower micro_batch_size or max_length' : '; turn on gradient_checkpointing');
    lines.push(`  GPU ${d.index} ${d.name}: ${formatBytes(d.freeMemory)} free of ${formatBytes(d.totalMemory)} → ${verdict}`);
  } else {
    lines.push('  no GPU detected: the estimate is for a CUDA GPU; on the CPU use quantization: none');
  }
  return `${lines.join('\n')}\n`;
}
