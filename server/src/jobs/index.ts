/**
 * The job manager in the language server: environment check, memory plan, training, summarize, evaluation —
 * through one engine process — and the engine's events forwarded to the client. server.ts registers it with a
 * single call: `registerJobs(connection)`.
 */
import * as path from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Connection } from 'vscode-languageserver';
import type { ResolvedConfig } from '../../../protocol/config';
import { TrainPlan as EngineTrainPlan, type TrainPlanResult } from '../../../protocol/engine';
import * as L from '../../../protocol/lsp';
import { loadConfig } from '../config/load';
import type { EngineSupervisor } from '../engine-client/supervise';
import { EngineHost, UntrustedWorkspaceError } from './engine-host';
import { downloadNotification } from './downloads';
import { exportRun, exportTarget } from './export';
import { summarize } from './generate';
import { evaluateRun, prepareRunEvaluation } from './evaluate';
import { problemFromConfig, problemFromError } from './problems';
import { prepareTrain, TrainJobs, type Notify } from './train';

export interface JobsOptions {
  repoRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** Tests: a fake engine. */
  launch?: () => ChildProcessWithoutNullStreams;
  /** The Python setting; default: `qloraStudio.pythonPath` asked from the client at each job. */
  pythonSetting?: () => Promise<string>;
  /** The workspace's trust; untrusted: every job that needs the engine answers Untrusted (default: trusted). */
  trusted?: () => boolean;
  /** Every training run's end, with the config file it trained (the linter shows failures on the config). */
  onRunEnded?: (configFile: string, end: L.TrainDidEndParams) => void;
}

type Sender = Pick<Connection, 'sendNotification'>;

/** The parts of a connection the job manager uses (a real Connection, or a test double). */
export interface JobsConnection extends Sender {
  onRequest(method: string, handler: (params: never, token: unknown) => unknown): unknown;
  workspace?: { getConfiguration(item: { section: string }): Promise<unknown> };
}

export class JobManager {
  readonly engine: EngineHost;
  readonly training: TrainJobs;
  private readonly notify: Notify;

  private readonly trusted: () => boolean;

  constructor(
    send: Sender,
    private readonly pythonSetting: () => Promise<string>,
    options: JobsOptions = {},
  ) {
    this.trusted = options.trusted ?? (() => true);
    const notify: Notify = (method, params) => void send.sendNotification(method, params);
    this.notify = notify;
    this.engine = new EngineHost({
      onStatus: (status) => notify(L.EngineDidChangeState, status),
      onLog: (text) => notify(L.EngineDidLog, { text }),
      repoRoot: options.repoRoot,
      env: options.env,
      launch: options.launch,
      trusted: options.trusted,
    });
    this.training = new TrainJobs(notify, options.onRunEnded);
  }

  async envCheck(params: L.EnvCheckParams): Promise<L.EnvCheckResult> {
    const setting = await this.pythonSetting();
    let python: string | null = null;
    let pythonSource: L.EnvCheckResult['pythonSource'] = null;
    try {
      const choice = this.engine.choosePython(setting);
      python = choice.executable;
      pythonSource = choice.source;
    } catch (error) {
      return { python, pythonSource, report: null, problem: problemFromError(error) };
    }
    if (!params.probe) return { python, pythonSource, report: this.engine.report, problem: null };
    try {
      const engine = await this.engine.engine(setting);
      return { python, pythonSource, report: engine.envReport, problem: null };
    } catch (error) {
      return { python, pythonSource, report: null, problem: problemFromError(error) };
    }
  }

  async plan(params: L.TrainPlanParams): Promise<L.TrainPlanResult> {
    const loaded = loadConfig(params.configPath);
    if (!loaded.ok) return { config: null, plan: null, problem: problemFromConfig(loaded.errors, path.dirname(params.configPath)) };
    try {
      const engine = await this.engine.engine(await this.pythonSetting());
      const plan = await engine.request(EngineTrainPlan, { config: loaded.config });
      return { config: loaded.config, plan, problem: null };
    } catch (error) {
      return { config: loaded.config, plan: null, problem: problemFromError(error) };
    }
  }

  /** Untrusted workspace: the problem every engine job answers, before it prepares anything. */
  private untrusted(): L.JobProblem | null {
    return this.trusted() ? null : problemFromError(new UntrustedWorkspaceError());
  }

  async trainStart(params: L.TrainStartParams): Promise<L.TrainStartResult> {
    const refused = this.untrusted();
    if (refused) return { started: null, problem: refused };
    const prepared = prepareTrain(params);
    if (!prepared.ok) return { started: null, problem: prepared.problem };
    let engine;
    try {
      engine = await this.engine.engine(await this.pythonSetting());
    } catch (error) {
      return { started: null, problem: problemFromError(error) };
    }
    return this.training.start(engine, prepared.target, this.engine.hold());
  }

  async trainCancel(params: L.TrainCancelParams): Promise<L.TrainCancelResult> {
    return this.training.cancel(params.runId);
  }

  list(): L.JobsListResult {
    return { jobs: this.training.active, engine: this.engine.current };
  }

  /** `job` on the engine, held (kept running) until it ends; `failed` answers when the engine cannot start. */
  private async withEngine<T>(failed: (problem: L.JobProblem) => T, job: (engine: EngineSupervisor) => Promise<T>): Promise<T> {
    let engine: EngineSupervisor;
    try {
      engine = await this.engine.engine(await this.pythonSetting());
    } catch (error) {
      return failed(problemFromError(error));
    }
    const release = this.engine.hold();
    try {
      return await job(engine);
    } finally {
      release();
    }
  }

  /** `signal` (the request's cancellation) stops the base model's download, if one is in flight. */
  async summarize(params: L.GenerateSummarizeParams, signal?: AbortSignal): Promise<L.GenerateSummarizeResult> {
    return this.withEngine(
      (problem) => ({ variable: null, prompt: null, adapter: null, base: null, seconds: 0, problem }),
      (engine) =>
        summarize(
          engine,
          params,
          (update) => this.notify(L.GenerateDidStream, update),
          (download) => this.notify(L.ModelDidProgress, downloadNotification(params.runDir, download)),
          signal,
        ),
    );
  }

  /** Zero-shot base vs adapter on the run's test split; `signal` cancels between generation batches, or the download. */
  async evalStart(params: L.EvalStartParams, signal: AbortSignal = new AbortController().signal): Promise<L.EvalStartResult> {
    const refused = this.untrusted();
    if (refused) return { reportPath: null, problem: refused };
    const prepared = await prepareRunEvaluation(params);
    if (!prepared.ok) return { reportPath: null, problem: prepared.problem };
    return this.withEngine(
      (problem) => ({ reportPath: null, problem }),
      (engine) => evaluateRun(engine, prepared.prepared, params.runDir, this.notify, signal),
    );
  }

  /** A run's adapter merged into its base model, written to a new folder. */
  async modelExport(params: L.ModelExportParams): Promise<L.ModelExportResult> {
    const refused = this.untrusted();
    if (refused) return { exported: null, problem: refused };
    const target = exportTarget(params);
    if (!target.ok) return { exported: null, problem: target.problem };
    return this.withEngine(
      (problem) => ({ exported: null, problem }),
      (engine) => exportRun(engine, params, target.run, this.notify),
    );
  }

  /** The memory estimate of a resolved config on the one shared engine (the lint server's config lens). */
  async planResolved(config: ResolvedConfig): Promise<TrainPlanResult> {
    const engine = await this.engine.engine(await this.pythonSetting());
    return engine.request(EngineTrainPlan, { config });
  }

  async dispose(): Promise<void> {
    await this.training.dispose();
    await this.engine.stop();
  }
}

/** Registers every qlora/* request on the connection; returns the manager (dispose it on shutdown). */
export function registerJobs(connection: JobsConnection, options: JobsOptions = {}): JobManager {
  const pythonSetting =
    options.pythonSetting ??
    (async (): Promise<string> => {
      try {
        const value = (await connection.workspace?.getConfiguration({ section: 'qloraStudio.pythonPath' })) as unknown;
        return typeof value === 'string' ? value : '';
      } catch {
        return '';
      }
    });
  const jobs = new JobManager(connection, pythonSetting, options);
  type Handler<M extends L.LspRequestMethod> = (params: L.LspRequests[M]['params'], signal: AbortSignal) => Promise<L.LspRequests[M]['result']> | L.LspRequests[M]['result'];
  const on = <M extends L.LspRequestMethod>(method: M, handler: Handler<M>): void => {
    connection.onRequest(method, ((params: L.LspRequests[M]['params'], token?: CancellationLike) => handler(params, abortSignalOf(token))) as (params: never) => unknown);
  };
  on(L.EnvCheck, (p) => jobs.envCheck(p));
  on(L.TrainPlan, (p) => jobs.plan(p));
  on(L.TrainStart, (p) => jobs.trainStart(p));
  on(L.TrainCancel, (p) => jobs.trainCancel(p));
  on(L.JobsList, () => jobs.list());
  on(L.GenerateSummarize, (p, signal) => jobs.summarize(p, signal));
  on(L.EvalStart, (p, signal) => jobs.evalStart(p, signal));
  on(L.ModelExport, (p) => jobs.modelExport(p));
  return jobs;
}

interface CancellationLike {
  isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): unknown;
}

/** An LSP cancellation token as an AbortSignal (the eval core checks one between batches). */
function abortSignalOf(token: CancellationLike | undefined): AbortSignal {
  const controller = new AbortController();
  if (token?.isCancellationRequested) controller.abort();
  else token?.onCancellationRequested(() => controller.abort());
  return controller.signal;
}
