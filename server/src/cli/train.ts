/** `qlora-studio train`: one fine-tune, from config to adapter, with progress, Ctrl-C and exact resume. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../protocol/config';
import {
  ErrorCodes,
  TrainCancel,
  TrainDidCheckpoint,
  TrainDidEnd,
  TrainDidEval,
  TrainDidProgress,
  TrainDidStage,
  TrainStart,
  type TrainDidEndParams,
} from '../../../protocol/engine';
import { ConfigError, displayPath } from '../config/errors';
import { loadConfig, parseOverrideNumber, type ConfigOverride } from '../config/load';
import { configToYaml } from '../config/serialize';
import type { EngineExit } from '../engine/supervise';
import { RunFolder } from '../../../protocol/runFolder';
import { defaultRunsDir, newestCheckpoint, newRunId, readRun, resumeTarget } from '../runs/registry';
import { LogTee } from '../runs/logTee';
import {
  ExitCode,
  failureJson,
  isBadInputCode,
  openEngine,
  parseCommandArgs,
  reportFailure,
  UsageError,
  writeJson,
  type CliContext,
  type Command,
} from './context';
import { JsonTrainView, TextTrainView, type TrainView } from './trainView';

const usage = `Usage: qlora-studio train <config.yaml> [options]
       qlora-studio train --resume <run-dir> [options]

Fine-tune a model with QLoRA as the config says; the run is written to <runs-dir>/<run-id>/.

Options:
  --resume <run-dir>   continue a cancelled or failed run from its newest checkpoint, with its saved config.yaml
  --max-steps <n>      override train.max_steps (with --resume: extend the run)
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
  'runs-dir': { type: 'string' },
  python: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const trainCommand: Command = { name: 'train', summary: 'fine-tune a model as a config says', usage, run: runTrain };

interface Prepared {
  config: ResolvedConfig;
  configFile: string;
  runDir: string;
  resume: boolean;
}

async function runTrain(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  const json = values.json === true;
  const prepared = prepare(values, positionals, ctx);
  if ('errors' in prepared) {
    for (const error of prepared.errors) {
      ctx.stderr.write(`${error.format(ctx.cwd)}\n`);
      if (json) writeJson(ctx.stdout, { event: 'error', ...error.toJSON() });
    }
    return ExitCode.BadInput;
  }
  const view: TrainView = json ? new JsonTrainView(ctx.stdout) : new TextTrainView(ctx.stdout, ctx.stderr, ctx.cwd);
  const { supervisor, owned } = openEngine(ctx, values.python);
  const tee = new LogTee(path.join(prepared.runDir, RunFolder.engineLog));
  if (prepared.resume) tee.open();

  let runId: string | null = null;
  let lastStep = 0;
  let interrupts = 0;
  let settle!: (outcome: { end: TrainDidEndParams } | { exit: EngineExit }) => void;
  const outcome = new Promise<{ end: TrainDidEndParams } | { exit: EngineExit }>((resolve) => (settle = resolve));
  const mine = (p: { runId: string }): boolean => runId === null || p.runId === runId;
  // Notifications that arrive before train/start's answer is shown wait for it, so output stays in order.
  let held: (() => void)[] | null = [];
  const show = (p: { runId: string }, render: () => void): void => {
    if (!mine(p)) return;
    if (held) held.push(() => mine(p) && render());
    else render();
  };
  const cancel = (): void => {
    if (runId) void supervisor.request(TrainCancel, { runId }).catch(() => undefined);
  };
  const onSigint = (): void => {
    interrupts++;
    if (interrupts === 1) {
      view.note('Cancelling: saving a checkpoint... (Ctrl-C again stops the engine now)');
      cancel();
    } else {
      view.note('Stopping the engine.');
      supervisor.kill();
    }
  };
  const subscriptions = [
    supervisor.onStderr((line) => {
      tee.line(line);
      if (values.verbose) ctx.stderr.write(`${line}\n`);
    }),
    supervisor.onNotification(TrainDidStage, (p) => show(p, () => view.stage(p))),
    supervisor.onNotification(TrainDidProgress, (p) =>
      show(p, () => {
        lastStep = p.step;
        view.progress(p);
      }),
    ),
    supervisor.onNotification(TrainDidEval, (p) => show(p, () => view.evaluated(p))),
    supervisor.onNotification(TrainDidCheckpoint, (p) => show(p, () => view.checkpoint(p))),
    supervisor.onNotification(TrainDidEnd, (p) => show(p, () => settle({ end: p }))),
    supervisor.onExit((exit) => settle({ exit })),
  ];
  ctx.signals.on('SIGINT', onSigint);
  try {
    if (!supervisor.running && !json) view.note('Starting the engine...');
    let started;
    try {
      started = await supervisor.request(TrainStart, { runDir: prepared.runDir, config: prepared.config, resume: prepared.resume });
    } catch (error) {
      if (fs.existsSync(prepared.runDir)) tee.open();
      if (interrupts > 0) return ExitCode.Cancelled;
      if (json) writeJson(ctx.stdout, failureJson(error, prepared.configFile));
      return reportFailure(error, ctx, prepared.configFile);
    }
    runId = started.runId;
    tee.open();
    saveExtendedConfig(prepared, started.runDir, values['max-steps'] !== undefined);
    view.started(started, prepared.resume);
    for (const render of held ?? []) render();
    held = null;
    if (interrupts > 0) cancel();

    const result = await outcome;
    const end: TrainDidEndParams =
      'end' in result ? result.end : endFromExit(result.exit, started.runId, lastStep, prepared.runDir);
    const status = end.status;
    const checkpoint = end.checkpointPath ?? newestCheckpoint(prepared.runDir)?.path ?? null;
    const resumeCommand =
      status !== 'completed' && checkpoint ? `qlora-studio train --resume ${displayPath(prepared.runDir, ctx.cwd)}` : null;
    const best = readRun(prepared.runDir).record?.best ?? null;
    view.ended({ end: { ...end, checkpointPath: checkpoint }, runDir: prepared.runDir, best, resumeCommand, logFile: tee.file });
    if (status === 'completed') return ExitCode.Ok;
    if (status === 'cancelled') return ExitCode.Cancelled;
    return end.error && isBadInputCode(end.error.code) ? ExitCode.BadInput : ExitCode.Failed;
  } finally {
    ctx.signals.off('SIGINT', onSigint);
    for (const s of subscriptions) s.dispose();
    if (owned) await supervisor.shutdown();
    await tee.close();
  }
}

function prepare(
  values: { resume?: string; 'max-steps'?: string; 'runs-dir'?: string },
  positionals: string[],
  ctx: CliContext,
): Prepared | { errors: ConfigError[] } {
  const overrides: ConfigOverride[] = [];
  if (values['max-steps'] !== undefined) {
    overrides.push({ field: 'train.max_steps', value: parseOverrideNumber(values['max-steps']), flag: '--max-steps' });
  }
  if (positionals.length > 1) throw new UsageError(`expected one config file, got ${positionals.length}: ${positionals.join(' ')}`);

  if (values.resume !== undefined) {
    const target = resumeTarget(values.resume, ctx.cwd);
    if (!target.ok) return { errors: [new ConfigError(null, 0, 0, '', target.message, '--resume')] };
    const loaded = loadConfig(target.configFile, { overrides, env: ctx.env });
    if (!loaded.ok) return { errors: loaded.errors };
    const maxSteps = loaded.config.train.max_steps;
    if (maxSteps <= target.checkpoint.step) {
      const message = overrides.length
        ? `must be beyond the checkpoint's step ${target.checkpoint.step} to continue the run (got ${maxSteps})`
        : `the run already reached max_steps ${maxSteps} at its checkpoint; pass --max-steps N (> ${target.checkpoint.step}) to extend it`;
      return { errors: [new ConfigError(null, 0, 0, 'train.max_steps', message, overrides.length ? '--max-steps' : '--resume')] };
    }
    if (positionals[0]) {
      ctx.stderr.write(`note: --resume continues with ${displayPath(target.configFile, ctx.cwd)} (the config as run); ${positionals[0]} is not read\n`);
    }
    return { config: loaded.config, configFile: target.configFile, runDir: target.runDir, resume: true };
  }

  const file = positionals[0];
  if (!file) throw new UsageError('missing the config file (or --resume <run-dir>)');
  const configFile = path.resolve(ctx.cwd, file);
  const loaded = loadConfig(configFile, { overrides, env: ctx.env });
  if (!loaded.ok) return { errors: loaded.errors };
  const runsDir = values['runs-dir'] ? path.resolve(ctx.cwd, values['runs-dir']) : defaultRunsDir(ctx.cwd);
  const runDir = path.join(runsDir, newRunId(configFile, runsDir));
  return { config: loaded.config, configFile, runDir, resume: false };
}

/**
 * The engine writes <run-dir>/config.yaml for a new run and keeps it on resume; when --max-steps extends a
 * resumed run, the saved config is updated (atomically) so it stays the config as run and a later resume
 * continues to the new end.
 */
function saveExtendedConfig(prepared: Prepared, runDir: string, extended: boolean): void {
  if (!prepared.resume || !extended) return;
  const file = path.join(runDir, RunFolder.config);
  const header = `The resolved config of this run, as run (train.max_steps extended by --max-steps on resume).`;
  const temp = `${file}.tmp-${process.pid}`;
  fs.mkdirSync(runDir, { recursive: true });
  fs.writeFileSync(temp, configToYaml(prepared.config, header));
  fs.renameSync(temp, file);
}

/** The engine went away without train/didEnd: killed by a second Ctrl-C, or crashed. */
function endFromExit(exit: EngineExit, runId: string, step: number, runDir: string): TrainDidEndParams {
  return {
    runId,
    status: exit.expected ? 'cancelled' : 'failed',
    step,
    adapterPath: null,
    checkpointPath: newestCheckpoint(runDir)?.path ?? null,
    error: exit.expected ? null : { code: ErrorCodes.InternalError, message: exit.error.message },
  };
}
