/**
 * What the server is doing now, fed by its notifications: the engine's state and the runs being trained.
 * The status bar, the Runs view and the dashboard listen to `onDidChange`.
 */
import * as vscode from 'vscode';
import * as L from '../../protocol/lsp';
import type { Client } from './client';

export interface LiveRun {
  runId: string;
  runDir: string;
  configPath: string | null;
  totalSteps: number;
  progress: L.TrainDidProgressParams | null;
  stage: string | null;
  /** Wall-clock time of the last event, to show "updated N s ago". */
  updatedAt: number;
}

export type LiveEvent =
  | { kind: 'engine'; engine: L.EngineStatus }
  | { kind: 'started'; run: LiveRun }
  | { kind: 'stage'; run: LiveRun; params: L.TrainDidStageParams }
  | { kind: 'progress'; run: LiveRun; params: L.TrainDidProgressParams }
  | { kind: 'eval'; run: LiveRun; params: L.TrainDidEvalParams }
  | { kind: 'checkpoint'; run: LiveRun; params: L.TrainDidCheckpointParams }
  | { kind: 'end'; run: LiveRun; params: L.TrainDidEndParams };

export class Live implements vscode.Disposable {
  private readonly runs = new Map<string, LiveRun>();
  private readonly emitter = new vscode.EventEmitter<LiveEvent>();
  readonly onDidChange = this.emitter.event;
  engine: L.EngineStatus = { state: 'stopped', gpu: null, python: null, message: null };

  /** Subscribes to a (new) client; the returned disposables belong to the client's lifetime. */
  attach(client: Client, log: vscode.OutputChannel): vscode.Disposable[] {
    const subs = [
      client.onNotification(L.EngineDidChangeState, (p) => {
        this.engine = p;
        this.emitter.fire({ kind: 'engine', engine: p });
      }),
      client.onNotification(L.EngineDidLog, (p) => log.append(p.text.endsWith('\n') ? p.text : p.text + '\n')),
      client.onNotification(L.TrainDidStage, (p) => {
        const run = this.touch(p.runId, p.runDir);
        run.stage = p.message || p.stage;
        this.emitter.fire({ kind: 'stage', run, params: p });
      }),
      client.onNotification(L.TrainDidProgress, (p) => {
        const run = this.touch(p.runId, p.runDir);
        run.progress = p;
        run.totalSteps = p.totalSteps;
        run.stage = 'training';
        this.emitter.fire({ kind: 'progress', run, params: p });
      }),
      client.onNotification(L.TrainDidEval, (p) => this.emitter.fire({ kind: 'eval', run: this.touch(p.runId, p.runDir), params: p })),
      client.onNotification(L.TrainDidCheckpoint, (p) =>
        this.emitter.fire({ kind: 'checkpoint', run: this.touch(p.runId, p.runDir), params: p }),
      ),
      client.onNotification(L.TrainDidEnd, (p) => {
        const run = this.touch(p.runId, p.runDir);
        this.runs.delete(p.runDir);
        this.emitter.fire({ kind: 'end', run, params: p });
      }),
    ];
    // Runs already training (after a window reload the server keeps them going).
    void client.request(L.JobsList, {}).then(
      (r) => {
        this.engine = r.engine;
        this.emitter.fire({ kind: 'engine', engine: r.engine });
        for (const job of r.jobs) if (job.kind === 'train') this.started(job.runId, job.runDir, job.configPath, job.progress?.totalSteps ?? 0, job.progress ? { ...job.progress, runDir: job.runDir } : null);
      },
      () => undefined,
    );
    return subs;
  }

  started(runId: string, runDir: string, configPath: string | null, totalSteps: number, progress: L.TrainDidProgressParams | null = null): LiveRun {
    const run: LiveRun = { runId, runDir, configPath, totalSteps, progress, stage: null, updatedAt: Date.now() };
    this.runs.set(runDir, run);
    this.emitter.fire({ kind: 'started', run });
    return run;
  }

  /** Runs training now, newest first. */
  get active(): LiveRun[] {
    return [...this.runs.values()].reverse();
  }

  byRunId(runId: string): LiveRun | undefined {
    return [...this.runs.values()].find((r) => r.runId === runId);
  }

  isLive(runDir: string): boolean {
    return this.runs.has(runDir);
  }

  /** The client went away: nothing is known to be running any more. */
  reset(): void {
    this.runs.clear();
    this.engine = { state: 'stopped', gpu: null, python: null, message: null };
    this.emitter.fire({ kind: 'engine', engine: this.engine });
  }

  private touch(runId: string, runDir: string): LiveRun {
    let run = this.runs.get(runDir);
    if (!run) {
      run = { runId, runDir, configPath: null, totalSteps: 0, progress: null, stage: null, updatedAt: Date.now() };
      this.runs.set(runDir, run);
      this.emitter.fire({ kind: 'started', run });
    }
    run.updatedAt = Date.now();
    return run;
  }

  dispose(): void {
    this.emitter.dispose();
  }
}
