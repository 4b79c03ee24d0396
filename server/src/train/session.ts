/**
 * One training run driven through the engine — the core both front ends share (the CLI renders it in a terminal,
 * the job manager forwards it to the editor): `train/start`, the engine's log teed into <run-dir>/engine.log, the
 * run's notifications delivered in order (those that race ahead of train/start's answer are held until it), and
 * the end: train/didEnd, or one made from the engine's exit when it was killed or crashed. The engine is the only
 * writer of the run folder (config.yaml included); this side only reads it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as E from '../../../protocol/engine';
import { RunFolder } from '../../../protocol/run-folder';
import type { Disposable } from '../engine-client/rpc';
import type { EngineExit, EngineSupervisor } from '../engine-client/supervise';
import { LogTee } from '../runs/log-tee';
import { newestCheckpoint } from '../runs/registry';
import type { TrainTarget } from './prepare';

/** What a front end does with the run's events; every method is optional. */
export interface TrainListener {
  stage?(p: E.TrainDidStageParams): void;
  progress?(p: E.TrainDidProgressParams): void;
  evaluated?(p: E.TrainDidEvalParams): void;
  checkpoint?(p: E.TrainDidCheckpointParams): void;
  /** Each line of the engine's stderr (also written to engine.log). */
  stderr?(line: string): void;
}

export class TrainSession {
  readonly tee: LogTee;
  /** train/didEnd (its checkpointPath filled in from disk when absent), or the end made from the engine's exit. */
  readonly ended: Promise<E.TrainDidEndParams>;
  runId: string | null = null;
  /** The last step a progress notification reported. */
  lastStep = 0;
  private held: (() => void)[] | null = [];
  private readonly subs: Disposable[];
  private settle!: (end: E.TrainDidEndParams) => void;

  constructor(
    private readonly engine: EngineSupervisor,
    readonly target: TrainTarget,
    listener: TrainListener = {},
  ) {
    this.tee = new LogTee(path.join(target.runDir, RunFolder.engineLog));
    if (target.resume) this.tee.open();
    this.ended = new Promise((resolve) => (this.settle = resolve));
    const deliver = <P extends { runId: string }>(p: P, handle: (p: P) => void): void => {
      if (this.runId !== null && p.runId !== this.runId) return; // another run of a shared engine
      if (this.held) this.held.push(() => (this.runId === null || p.runId === this.runId) && handle(p));
      else handle(p);
    };
    this.subs = [
      engine.onStderr((line) => {
        this.tee.line(line);
        listener.stderr?.(line);
      }),
      engine.onNotification(E.TrainDidStage, (p) => deliver(p, (q) => listener.stage?.(q))),
      engine.onNotification(E.TrainDidProgress, (p) =>
        deliver(p, (q) => {
          this.lastStep = q.step;
          listener.progress?.(q);
        }),
      ),
      engine.onNotification(E.TrainDidEval, (p) => deliver(p, (q) => listener.evaluated?.(q))),
      engine.onNotification(E.TrainDidCheckpoint, (p) => deliver(p, (q) => listener.checkpoint?.(q))),
      engine.onNotification(E.TrainDidEnd, (p) => deliver(p, (q) => this.end(q))),
      engine.onExit((exit) => this.end(this.fromExit(exit))),
    ];
  }

  /**
   * Asks the engine to start (or resume) the run; rejects with the engine's error (the input was refused, nothing
   * trains). Held notifications are delivered once `onStarted` has shown the answer.
   */
  async start(onStarted: (started: E.TrainStartResult) => void = () => undefined): Promise<E.TrainStartResult> {
    const { config, runDir, resume } = this.target;
    let started: E.TrainStartResult;
    try {
      started = await this.engine.request(E.TrainStart, { runDir, config, resume });
    } catch (error) {
      if (fs.existsSync(runDir)) this.tee.open(); // what the engine said before it refused, kept with the run
      throw error;
    }
    this.runId = started.runId;
    this.tee.open();
    onStarted(started);
    for (const deliver of this.held ?? []) deliver();
    this.held = null;
    return started;
  }

  /** Asks the engine to cancel: it saves a checkpoint at the next step boundary and ends the run `cancelled`. */
  async cancel(): Promise<boolean> {
    if (!this.runId) return false;
    return (await this.engine.request(E.TrainCancel, { runId: this.runId }).catch(() => ({ cancelling: false }))).cancelling;
  }

  /** Stops listening and closes engine.log. */
  async close(): Promise<void> {
    for (const s of this.subs.splice(0)) s.dispose();
    await this.tee.close();
  }

  private end(end: E.TrainDidEndParams): void {
    this.settle({ ...end, checkpointPath: end.checkpointPath ?? newestCheckpoint(this.target.runDir)?.path ?? null });
  }

  /** The engine went away without train/didEnd: stopped on request (cancelled) or crashed (failed). */
  private fromExit(exit: EngineExit): E.TrainDidEndParams {
    return {
      runId: this.runId ?? path.basename(this.target.runDir),
      status: exit.expected ? 'cancelled' : 'failed',
      step: this.lastStep,
      adapterPath: null,
      checkpointPath: null,
      error: exit.expected ? null : { code: E.ErrorCodes.InternalError, message: exit.error.message },
    };
  }
}
