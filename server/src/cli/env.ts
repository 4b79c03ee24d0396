/** `qlora-studio env`: what the engine found — Python, torch and CUDA, GPUs, bitsandbytes — and what to fix. */
import type { EnvReport, PackageInfo } from '../../../protocol/engine';
import { ExitCode, failureJson, openEngine, parseCommandArgs, reportFailure, writeJson, type CliContext, type Command } from './subcommand';
import { formatBytes } from '../../../protocol/format';
import { table } from './output';
import { torchMismatches } from '../../../scripts/torch-build.mjs';

const usage = `Usage: qlora-studio env [options]

Start the engine and report its environment: Python, torch and CUDA, GPUs with memory, bitsandbytes.

Options:
  --python <path>   Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json            print the report as one JSON object
  -h, --help        show this help
`;

const options = {
  python: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const envCommand: Command = { name: 'env', summary: "show the engine's Python, torch, CUDA and GPUs", usage, run: runEnv };

async function runEnv(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  const { supervisor, owned } = openEngine(ctx, values.python);
  try {
    const report = await supervisor.start();
    if (values.json) writeJson(ctx.stdout, report);
    else ctx.stdout.write(formatEnvReport(report));
    return ExitCode.Ok;
  } catch (error) {
    if (values.json) writeJson(ctx.stdout, failureJson(error));
    return reportFailure(error, ctx);
  } finally {
    if (owned) await supervisor.shutdown();
  }
}

function version(info: PackageInfo): string {
  if (info.available) return info.version ?? 'installed (version unknown)';
  return `not available${info.error ? `: ${info.error}` : ''}`;
}

/** The report as text; `machine` is where the engine runs (this process's platform: the CLI starts it here). */
export function formatEnvReport(r: EnvReport, machine: { platform: string; arch: string } = process): string {
  const driver = r.nvidia?.driver ?? null;
  const build = r.torch.cuda ? `  (CUDA ${r.torch.cuda})` : r.torch.mps ? '  (MPS)' : '  (CPU build)';
  const rows: string[][] = [
    ['Python', `${r.python.version}  (${r.python.executable})`],
    ['Platform', r.platform],
    ['Driver', driver ? `NVIDIA ${driver}` : 'no NVIDIA driver found (nvidia-smi)'],
    ['torch', r.torch.available ? `${version(r.torch)}${build}` : version(r.torch)],
    ['transformers', version(r.transformers)],
    ['peft', version(r.peft)],
    ['accelerate', version(r.accelerate)],
    ['bitsandbytes', version(r.bitsandbytes)],
  ];
  const lines = [table(rows)];
  if (r.torch.available) {
    const mismatches = torchMismatches({ platform: machine.platform, arch: machine.arch, driver, torchCuda: r.torch.cuda, python: r.python.executable });
    for (const m of mismatches) lines.push(`  → ${m.problem}. Fix: ${m.fix}`);
  }
  const missing = (['torch', 'transformers', 'peft', 'accelerate'] as const).filter((name) => !r[name].available);
  if (missing.length) {
    lines.push(`  → training needs ${missing.join(', ')}: run \`npm run setup:engine\`, or install them into ${r.python.executable}`);
  }
  if (!r.bitsandbytes.available) {
    lines.push(
      '  → 4-bit and 8-bit quantization (nf4, fp4, int8) and paged_adamw_8bit need bitsandbytes with a CUDA GPU:',
      `    ${r.python.executable} -m pip install bitsandbytes   (or set quantization: none and optimizer: adamw_torch)`,
    );
  }
  if (r.cuda.available && r.cuda.devices.length > 0) {
    lines.push(`CUDA: ${r.cuda.devices.length} GPU${r.cuda.devices.length > 1 ? 's' : ''}`);
    const gpus = r.cuda.devices.map((g) => [
      `  GPU ${g.index}`,
      g.name,
      `${formatBytes(g.freeMemory)} free of ${formatBytes(g.totalMemory)}`,
      `compute ${g.capability.join('.')}`,
      g.bf16 ? 'bf16' : 'no bf16 (float16 compute)',
    ]);
    lines.push(table(gpus));
  } else {
    lines.push('CUDA: no GPU detected — training runs on the CPU (set quantization: none and optimizer: adamw_torch)');
  }
  return `${lines.join('\n')}\n`;
}
