/**
 * Training jobs in the language server: the same steps as `qlora-studio train` (load and validate the config,
 * name the run folder, `train/start`, save the resolved config, tee the engine log into the run folder), with the
 * engine's notifications forwarded to the client with the run folder added. One training run at a time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../protocol/config';
import * as E from '../../../protocol/engine';
import * as L from '../../../protocol/lsp';
import { loadConfig } from '../config/load';
import { configToYaml } from '../config/serialize';
import { LogTee } from '../runs/logTee';
import { RunFolder } from '../../../protocol/runFolder';
import { newestCheckpoint, newRunId, resumeTarget } from '../runs/registry';
import type { Disposable } from '../engine/rpc';
import type { EngineSupervisor } from '../engine/supervise';
import { problem, problemFromConfig, problemFromError } from './problems';

export interface Notify {
  <M extends L.LspNotificationMethod>(method: M, params: L.LspNotifications[M]): void;
}

interface ActiveRun {
  job: L.ActiveJob;
  tee: LogTee;
  subs: Disposable[];
  release: () => void;
}

export type Prepared = { ok: true; config: ResolvedConfig; configFile: string; runDir: string; resume: boolean } | { ok: false; problem: L.JobProblem };

/** Loads the config (or the run's saved one, to resume) and picks the run folder. */
export function prepareTrain(params: L.TrainStartParams): Prepared {
  if (params.resumeRunDir) {
    const target = resumeTarget(params.resumeRunDir);
    if (!target.ok) return { ok: false, problem: problem(L.JobErrorCodes.RunNotUsable, target.message, 'Pick a run that was cancelled or failed after its first checkpoint.') };
    const loaded = loadConfig(target.configFile);
    if (!loaded.ok) return { ok: false, problem: problemFromConfig(loaded.errors, path.dirname(target.configFile)) };
    if (loaded.config.train.max_steps <= target.checkpoint.step) {
      return {
        ok: false,
        problem: problem(
          L.JobErrorCodes.RunNotUsable,
          `The run already reached max_steps ${loaded.config.train.max_steps} at its checkpoint (step ${target.checkpoint.step}).`,
          `To train longer, raise train.max_steps in ${target.configFile} and resume again.`,
        ),
      };
    }
    return { ok: true, config: loaded.config, configFile: target.configFile, runDir: target.runDir, resume: true };
  }
  const configFile = path.resolve(params.configPath);
  const loaded = loadConfig(configFile);
  if (!loaded.ok) return { ok: false, problem: problemFromConfig(loaded.errors, path.dirname(configFile)) };
  const runsDir = path.resolve(params.runsDir);
  return { ok: true, config: loaded.config, configFile, runDir: path.join(runsDir, newRunId(configFile, runsDir)), resume: false };
}

export class TrainJobs {
  private readonly runs = new Map<string, ActiveRun>();

  constructor(
    private readonly notify: Notify,
    private readonly onEnded?: (configFile: string, end: L.TrainDidEndParams) => void,
  ) {}

  get active(): L.ActiveJob[] {
    return [...this.runs.values()].map((r) => r.job);
  }

  async start(engine: EngineSupervisor, prepared: Extract<Prepared, { ok: true }>, release: () => void): Promise<L.TrainStartResult> {
    if (this.runs.size > 0) {
      release();
      const running = [...this.runs.values()][0]!.job.runId;
      return { started: null, problem: problem(L.JobErrorCodes.AlreadyRunning, `Run ${running} is still training.`, 'Wait for it to end, or cancel it (QLoRA Studio: Cancel Run).') };
    }
    const tee = new LogTee(path.join(prepared.runDir, RunFolder.engineLog));
    if (prepared.resume) tee.open();
    let runId: string | null = null;
    const buffered: [string, unknown][] = [];
    const mine = (p: { runId: string }): boolean => runId === null || p.runId === runId;
    const forward = <M extends L.LspNotificationMethod>(method: M, params: L.LspNotifications[M]): void => {
      if (runId === null) buffered.push([method, params]);
      else this.notify(method, params);
    };
    const active: ActiveRun = {
      job: { runId: '', runDir: prepared.runDir, configPath: prepared.configFile, kind: 'train', progress: null, stage: null },
      tee,
      subs: [],
      release,
    };
    const runDir = prepared.runDir;
    active.subs.push(
      engine.onStderr((line) => tee.line(line)),
      engine.onNotification(E.TrainDidStage, (p) => {
        if (!mine(p)) return;
        active.job.stage = p.stage;
        forward(L.TrainDidStage, { ...p, runDir });
      }),
      engine.onNotification(E.TrainDidProgress, (p) => {
        if (!mine(p)) return;
        active.job.progress = p;
        forward(L.TrainDidProgress, { ...p, runDir });
      }),
      engine.onNotification(E.TrainDidEval, (p) => mine(p) && forward(L.TrainDidEval, { ...p, runDir })),
      engine.onNotification(E.TrainDidCheckpoint, (p) => mine(p) && forward(L.TrainDidCheckpoint, { ...p, runDir })),
      engine.onNotification(E.TrainDidEnd, (p) => {
        if (mine(p)) void this.finish(runDir, { ...p, runDir });
      }),
      engine.onExit((exit) => {
        if (!this.runs.has(runDir)) return;
        const step = active.job.progress?.step ?? 0;
        void this.finish(runDir, {
          runId: runId ?? path.basename(runDir),
          runDir,
          status: exit.expected ? 'cancelled' : 'failed',
          step,
          adapterPath: null,
          checkpointPath: newestCheckpoint(runDir)?.path ?? null,
          error: exit.expected ? null : { code: E.ErrorCodes.InternalError, message: exit.error.message },
        });
      }),
    );
    this.runs.set(runDir, active);
    let started: E.TrainStartResult;
    try {
      started = await engine.request(E.TrainStart, { runDir, config: prepared.config, resume: prepared.resume });
    } catch (error) {
      if (fs.existsSync(runDir)) tee.open();
      this.drop(runDir);
      return { started: null, problem: problemFromError(error) };
    }
    runId = started.runId;
    active.job.runId = started.runId;
    tee.open();
    saveConfig(prepared, started.runDir);
    for (const [method, params] of buffered.splice(0)) {
      const p = params as { runId: string };
      if (p.runId === runId) this.notify(method as L.LspNotificationMethod, params as never);
    }
    return { started: { ...started, configPath: prepared.configFile }, problem: null };
  }

  async cancel(engine: EngineSupervisor | null, runId: string): Promise<L.TrainCancelResult> {
    const run = [...this.runs.values()].find((r) => r.job.runId === runId);
    if (!run || !engine) return { cancelling: false };
    return engine.request(E.TrainCancel, { runId });
  }

  private async finish(runDir: string, end: L.TrainDidEndParams): Promise<void> {
    const run = this.runs.get(runDir);
    if (!run) return;
    this.drop(runDir);
    await run.tee.close();
    this.notify(L.TrainDidEnd, { ...end, checkpointPath: end.checkpointPath ?? newestCheckpoint(runDir)?.path ?? null });
    this.onEnded?.(run.job.configPath, end);
  }

  private drop(runDir: string): void {
    const run = this.runs.get(runDir);
    if (!run) return;
    this.runs.delete(runDir);
    for (const s of run.subs) s.dispose();
    run.release();
  }

  async dispose(): Promise<void> {
    for (const runDir of [...this.runs.keys()]) {
      const run = this.runs.get(runDir)!;
      this.drop(runDir);
      await run.tee.close();
    }
  }
}

/** <run-dir>/config.yaml: the resolved config, as run (atomic; a resume rewrites it). */
function saveConfig(prepared: Extract<Prepared, { ok: true }>, runDir: string): void {
  const file = path.join(runDir, RunFolder.config);
  if (fs.existsSync(file) && !prepared.resume) return;
  const header = `The resolved config of this run, as run (from ${prepared.configFile}).\nResume: qlora-studio train --resume ${runDir}`;
  const temp = `${file}.tmp-${process.pid}`;
  fs.mkdirSync(runDir, { recursive: true });
  fs.writeFileSync(temp, configToYaml(prepared.config, header));
  fs.renameSync(temp, file);
}
