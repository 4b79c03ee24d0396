/**
 * What a training run starts from: the config (loaded and validated once, here) and the run folder — a new one
 * named in the runs folder, or an existing one to resume with its saved config.yaml. Both front ends use it: the
 * CLI (`qlora-studio train`) and the editor's job manager.
 */
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../protocol/config';
import { ConfigError } from '../config/errors';
import { loadConfig, type ConfigOverride } from '../config/load';
import { newRunId, resumeTarget } from '../runs/registry';

export interface TrainTarget {
  config: ResolvedConfig;
  /** The config file read: the user's, or <run-dir>/config.yaml on resume. */
  configFile: string;
  runDir: string;
  resume: boolean;
}

export type TrainRequest =
  | { configFile: string; runsDir: string; overrides?: ConfigOverride[] }
  | { resumeRunDir: string; overrides?: ConfigOverride[] };

/**
 * Why a run cannot start: the config's problems, or a run folder that cannot be resumed (not a run, no checkpoint,
 * or already at train.max_steps). `flag` is the command-line option the problem is about, for the CLI.
 */
export type TrainPrepareFailure =
  | { kind: 'config'; errors: ConfigError[] }
  | { kind: 'resume'; message: string; field: string; flag: '--resume' | '--max-steps' };

export type Prepared = { ok: true; target: TrainTarget } | { ok: false; failure: TrainPrepareFailure };

export function prepareTrain(request: TrainRequest, cwd: string, env: NodeJS.ProcessEnv = process.env): Prepared {
  const overrides = request.overrides ?? [];
  if ('resumeRunDir' in request) {
    const target = resumeTarget(request.resumeRunDir, cwd);
    if (!target.ok) return { ok: false, failure: { kind: 'resume', message: target.message, field: '', flag: '--resume' } };
    const loaded = loadConfig(target.configFile, { overrides, env });
    if (!loaded.ok) return { ok: false, failure: { kind: 'config', errors: loaded.errors } };
    const maxSteps = loaded.config.train.max_steps;
    if (maxSteps <= target.checkpoint.step) {
      const extended = overrides.some((o) => o.field === 'train.max_steps');
      const message = extended
        ? `must be beyond the checkpoint's step ${target.checkpoint.step} to continue the run (got ${maxSteps})`
        : `the run already reached max_steps ${maxSteps} at its checkpoint (step ${target.checkpoint.step}); raise train.max_steps (--max-steps N) to extend it`;
      return { ok: false, failure: { kind: 'resume', message, field: 'train.max_steps', flag: extended ? '--max-steps' : '--resume' } };
    }
    return { ok: true, target: { config: loaded.config, configFile: target.configFile, runDir: target.runDir, resume: true } };
  }
  const configFile = path.resolve(cwd, request.configFile);
  const loaded = loadConfig(configFile, { overrides, env });
  if (!loaded.ok) return { ok: false, failure: { kind: 'config', errors: loaded.errors } };
  const runsDir = path.resolve(cwd, request.runsDir);
  return { ok: true, target: { config: loaded.config, configFile, runDir: path.join(runsDir, newRunId(configFile, runsDir)), resume: false } };
}

/** A resume failure as the CLI prints config problems. */
export function failureErrors(failure: TrainPrepareFailure): ConfigError[] {
  return failure.kind === 'config' ? failure.errors : [new ConfigError(null, 0, 0, failure.field, failure.message, failure.flag)];
}
