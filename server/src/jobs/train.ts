/**
 * Training jobs in the language server: the editor's front end to the training core (server/src/train/), which
 * `qlora-studio train` shares. The engine's notifications go to the client with the run folder added. One training
 * run at a time.
 */
import * as path from 'node:path';
import * as L from '../../../protocol/lsp';
import { formatDownload } from '../../../protocol/format';
import { prepareTrain as prepare, type TrainTarget } from '../train/prepare';
import { TrainSession } from '../train/session';
import type { EngineSupervisor } from '../engine-client/supervise';
import { problem, problemFromConfig, problemFromError } from './problems';

export interface Notify {
  <M extends L.LspNotificationMethod>(method: M, params: L.LspNotifications[M]): void;
}

interface ActiveRun {
  job: L.ActiveJob;
  session: TrainSession;
  release: () => void;
}

export type Prepared = { ok: true; target: TrainTarget } | { ok: false; problem: L.JobProblem };

/** Loads the config (or the run's saved one, to resume) and picks the run folder; a failure as a JobProblem. */
export function prepareTrain(params: L.TrainStartParams): Prepared {
  const request = params.resumeRunDir ? { resumeRunDir: params.resumeRunDir } : { configFile: params.configPath, runsDir: params.runsDir };
  const prepared = prepare(request, process.cwd());
  if (prepared.ok) return prepared;
  const failure = prepared.failure;
  if (failure.kind === 'config') {
    const file = failure.errors[0]?.file;
    return { ok: false, problem: problemFromConfig(failure.errors, file ? path.dirname(file) : process.cwd()) };
  }
  const fix = failure.field === 'train.max_steps' ? 'Raise train.max_steps in the run\'s config.yaml and resume again.' : 'Pick a run that was cancelled or failed after its first checkpoint.';
  return { ok: false, problem: problem(L.JobErrorCodes.RunNotUsable, failure.message, fix) };
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

  async start(engine: EngineSupervisor, target: TrainTarget, release: () => void): Promise<L.TrainStartResult> {
    if (this.runs.size > 0) {
      release();
      const running = [...this.runs.values()][0]!.job.runId;
      return { started: null, problem: problem(L.JobErrorCodes.AlreadyRunning, `Run ${running} is still training.`, 'Wait for it to end, or cancel it (QLoRA Studio: Cancel Run).') };
    }
    const runDir = target.runDir;
    const job: L.ActiveJob = { runId: '', runDir, configPath: target.configFile, kind: 'train', progress: null, stage: null };
    const session = new TrainSession(engine, target, {
      stage: (p) => {
        job.stage = p.stage;
        // A download's bytes go into the message every editor view shows (notification, status bar, dashboard).
        this.notify(L.TrainDidStage, { ...p, message: p.download ? formatDownload(p.download) : p.message, runDir });
      },
      progress: (p) => {
        job.progress = p;
        this.notify(L.TrainDidProgress, { ...p, runDir });
      },
      evaluated: (p) => this.notify(L.TrainDidEval, { ...p, runDir }),
      checkpoint: (p) => this.notify(L.TrainDidCheckpoint, { ...p, runDir }),
    });
    this.runs.set(runDir, { job, session, release });
    let started;
    try {
      started = await session.start((s) => (job.runId = s.runId));
    } catch (error) {
      await this.drop(runDir);
      return { started: null, problem: problemFromError(error) };
    }
    void session.ended.then((end) => this.finish(runDir, { ...end, runDir }));
    return { started: { ...started, configPath: target.configFile }, problem: null };
  }

  async cancel(runId: string): Promise<L.TrainCancelResult> {
    const run = [...this.runs.values()].find((r) => r.job.runId === runId);
    return { cancelling: run ? await run.session.cancel() : false };
  }

  private async finish(runDir: string, end: L.TrainDidEndParams): Promise<void> {
    const run = this.runs.get(runDir);
    if (!run) return;
    await this.drop(runDir);
    this.notify(L.TrainDidEnd, end);
    this.onEnded?.(run.job.configPath, end);
  }

  private async drop(runDir: string): Promise<void> {
    const run = this.runs.get(runDir);
    if (!run) return;
    this.runs.delete(runDir);
    run.release();
    await run.session.close();
  }

  async dispose(): Promise<void> {
    for (const runDir of [...this.runs.keys()]) await this.drop(runDir);
  }
}
