/** `qlora-studio train`: one fine-tune, from config to adapter, with progress, Ctrl-C and exact resume. */
import * as path from 'node:path';
import { displayPath } from '../config/errors';
import { parseOverrideNumber, type ConfigOverride } from '../config/load';
import { defaultRunsDir, readRun } from '../runs/registry';
import { failureErrors, prepareTrain, type Prepared } from '../train/prepare';
import { TrainSession } from '../train/session';
import {
  ExitCode,
  failureJson,
  isBadInputCode,
  openEngine,
  parseCommandArgs,
  reportConfigErrors,
  reportFailure,
  UsageError,
  writeJson,
  type CliContext,
  type Command,
} from './subcommand';
import { JsonTrainView, TextTrainView, type TrainView } from './train-view';

const usage = `Usage: qlora-studio train <config.yaml> [options]
       qlora-studio train --resume <run-dir> [options]

Fine-tune a model with QLoRA as the config says; the run is written to <runs-dir>/<run-id>/.

Options:
  --resume <run-dir>   continue a cancelled or failed run from its newest checkpoint, with its saved config.yaml
  --max-steps <n>      override train.max_steps (with --resume: extend the run)
  --devices <n|auto>   override train.devices: training processes, one per GPU (data parallel, through torchrun;
                       without GPUs, CPU processes). auto: every visible GPU
  --runs-dir <dir>     where runs are written (default: ./runs)
  --python <path>      Python for the engine (default: $QLORA_STUDIO_PYTHON, else the project's .venv)
  --json               one JSON object per line per event; the last is {"event":"end",...}
  --verbose            echo the engine's log (stderr) as it runs; it is always saved to <run-dir>/engine.log
  -h, --help           show this help

Ctrl-C cancels cleanly (a checkpoint is saved; resume with --resume); a second Ctrl-C stops the engine at once.
Exit status: 0 completed, 1 failed, 2 bad input (config, data, template, environment), 130 cancelled.
`;

const options = {
  resume: { type: 'string' },
  'max-steps': { type: 'string' },
  devices: { type: 'string' },
  'runs-dir': { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const trainCommand: Command = { name: 'train', summary: 'fine-tune a model as a config says', usage, run: runTrain };

async function runTrain(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  const json = values.json === true;
  const prepared = prepare(values, positionals, ctx);
  if (!prepared.ok) return reportConfigErrors(failureErrors(prepared.failure), ctx, json);
  const target = prepared.target;
  const view: TrainView = json ? new JsonTrainView(ctx.stdout) : new TextTrainView(ctx.stdout, ctx.stderr, ctx.cwd);
  const { supervisor, owned } = openEngine(ctx, values.python);
  const session = new TrainSession(supervisor, target, {
    stage: (p) => view.stage(p),
    progress: (p) => view.progress(p),
    evaluated: (p) => view.evaluated(p),
    checkpoint: (p) => view.checkpoint(p),
    stderr: (line) => values.verbose && ctx.stderr.write(`${line}\n`),
  });
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts === 1) {
      view.note('Cancelling: saving a checkpoint... (Ctrl-C again stops the engine now)');
      void session.cancel();
    } else {
      view.note('Stopping the engine.');
      supervisor.kill();
    }
  };
  ctx.signals.on('SIGINT', onSigint);
  try {
    if (!supervisor.running && !json) view.note('Starting the engine...');
    try {
      await session.start((started) => view.started(started, target.resume));
    } catch (error) {
      if (interrupts > 0) return ExitCode.Cancelled;
      if (json) writeJson(ctx.stdout, failureJson(error, target.configFile));
      return reportFailure(error, ctx, target.configFile);
    }
    if (interrupts > 0) void session.cancel(); // Ctrl-C while the run was starting

    const end = await session.ended;
    const resumeCommand = end.status !== 'completed' && end.checkpointPath ? `qlora-studio train --resume ${displayPath(target.runDir, ctx.cwd)}` : null;
    const best = readRun(target.runDir).record?.best ?? null;
    view.ended({ end, runDir: target.runDir, best, resumeCommand, logFile: session.tee.file });
    if (end.status === 'completed') return ExitCode.Ok;
    if (end.status === 'cancelled') return ExitCode.Cancelled;
    return end.error && isBadInputCode(end.error.code) ? ExitCode.BadInput : ExitCode.Failed;
  } finally {
    ctx.signals.off('SIGINT', onSigint);
    if (owned) await supervisor.shutdown();
    await session.close();
  }
}

/** The command line → a TrainRequest for the training core (config and run folder, or the run to resume). */
function prepare(values: { resume?: string; 'max-steps'?: string; devices?: string; 'runs-dir'?: string }, positionals: string[], ctx: CliContext): Prepared {
  const overrides: ConfigOverride[] = [];
  if (values['max-steps'] !== undefined) {
    overrides.push({ field: 'train.max_steps', value: parseOverrideNumber(values['max-steps']), flag: '--max-steps' });
  }
  if (values.devices !== undefined) {
    const value = values.devices.trim() === 'auto' ? 'auto' : parseOverrideNumber(values.devices);
    overrides.push({ field: 'train.devices', value, flag: '--devices' });
  }
  if (positionals.length > 1) throw new UsageError(`expected one config file, got ${positionals.length}: ${positionals.join(' ')}`);
  if (values.resume !== undefined) {
    const prepared = prepareTrain({ resumeRunDir: values.resume, overrides }, ctx.cwd, ctx.env);
    if (prepared.ok && positionals[0]) {
      ctx.stderr.write(`note: --resume continues with ${displayPath(prepared.target.configFile, ctx.cwd)} (the config as run); ${positionals[0]} is not read\n`);
    }
    return prepared;
  }
  const file = positionals[0];
  if (!file) throw new UsageError('missing the config file (or --resume <run-dir>)');
  const runsDir = values['runs-dir'] ? path.resolve(ctx.cwd, values['runs-dir']) : defaultRunsDir(ctx.cwd);
  return prepareTrain({ configFile: file, runsDir, overrides }, ctx.cwd, ctx.env);
}
