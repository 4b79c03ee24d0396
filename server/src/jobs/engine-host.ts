/**
 * The language server's one engine: an EngineSupervisor created for the configured Python (and re-created when
 * the setting changes while nothing runs), whose state and stderr go to the client as notifications.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { InitializeResult } from '../../../protocol/engine';
import type { EngineStatus } from '../../../protocol/lsp';
import { findPython, type PythonChoice } from '../engine-client/python';
import { repoRoot } from '../engine-client/paths';
import type { Disposable } from '../engine-client/rpc';
import { EngineSupervisor } from '../engine-client/supervise';

export interface EngineHostOptions {
  /** Called with every state change. */
  onStatus(status: EngineStatus): void;
  /** Engine stderr, batched. */
  onLog(text: string): void;
  /** Every stderr line, unbatched (the run's engine.log). */
  onLine?(line: string): void;
  repoRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** Tests: start a fake engine instead of Python. */
  launch?: () => ChildProcessWithoutNullStreams;
  /** The workspace's trust (the client's initializationOptions.trusted); an untrusted one starts no engine. */
  trusted?: () => boolean;
}

/** Restricted Mode: the engine would run the workspace's Python choice, configs and model code. */
export class UntrustedWorkspaceError extends Error {
  constructor() {
    super('Restricted Mode: QLoRA Studio starts no Python engine in an untrusted workspace (its configs, models and settings could run code).');
    this.name = 'UntrustedWorkspaceError';
  }
}

export class EngineHost {
  private supervisor: EngineSupervisor | null = null;
  private python: string | null = null;
  private subs: Disposable[] = [];
  private status: EngineStatus = { state: 'stopped', gpu: null, python: null, message: null };
  private logBuffer: string[] = [];
  private logTimer: NodeJS.Timeout | null = null;
  /** Jobs holding the engine busy. */
  private busy = 0;

  constructor(private readonly options: EngineHostOptions) {}

  get current(): EngineStatus {
    return this.status;
  }

  get report(): InitializeResult | null {
    return this.supervisor?.envReport ?? null;
  }

  /** Which interpreter the engine would use (throws PythonNotFoundError with the fix). */
  choosePython(explicit: string): PythonChoice {
    return findPython({ explicit, repoRoot: this.root(), env: this.options.env });
  }

  /** The supervisor for this interpreter setting, started (initialize done). */
  async engine(pythonSetting: string): Promise<EngineSupervisor> {
    if (this.options.trusted && !this.options.trusted()) throw new UntrustedWorkspaceError();
    const choice = this.options.launch ? { executable: 'fake', source: 'option' as const } : this.choosePython(pythonSetting);
    if (this.supervisor && this.python !== choice.executable && this.busy === 0) await this.stop();
    if (!this.supervisor) this.create(choice.executable);
    const supervisor = this.supervisor!;
    if (!supervisor.running || !supervisor.envReport) this.set({ state: 'starting', python: choice.executable, message: 'starting the engine' });
    try {
      const report = await supervisor.start();
      const gpu = report.cuda.devices[0] ?? null;
      this.set({ state: this.busy > 0 ? 'busy' : 'ready', gpu, python: choice.executable, message: report.cuda.available ? null : 'no CUDA GPU: CPU only' });
      return supervisor;
    } catch (error) {
      this.set({ state: 'crashed', message: (error as Error).message.split('\n')[0] ?? 'the engine did not start' });
      throw error;
    }
  }

  /** Marks the engine busy for the duration of a job. */
  hold(): () => void {
    this.busy++;
    this.set({ state: 'busy' });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.busy = Math.max(0, this.busy - 1);
      if (this.busy === 0 && this.supervisor?.running) this.set({ state: 'ready' });
    };
  }

  async stop(): Promise<void> {
    const supervisor = this.supervisor;
    this.supervisor = null;
    for (const s of this.subs.splice(0)) s.dispose();
    if (supervisor) await supervisor.shutdown();
    this.flushLog();
    this.set({ state: 'stopped', gpu: null, message: null });
  }

  private create(python: string): void {
    this.python = python;
    const supervisor = new EngineSupervisor({
      clientName: 'qlora-studio-server',
      repoRoot: this.options.repoRoot,
      python: () => python,
      env: this.options.env,
      launch: this.options.launch,
    });
    this.supervisor = supervisor;
    this.subs.push(
      supervisor.onStderr((line) => {
        this.options.onLine?.(line);
        this.log(line);
      }),
      supervisor.onExit((exit) => {
        this.flushLog();
        if (exit.expected) this.set({ state: 'stopped', message: null });
        else this.set({ state: 'crashed', message: exit.error.message.split('\n')[0] ?? 'the engine exited' });
      }),
    );
  }

  private root(): string {
    return this.options.repoRoot ?? repoRoot();
  }

  private set(change: Partial<EngineStatus>): void {
    this.status = { ...this.status, ...change };
    this.options.onStatus(this.status);
  }

  private log(line: string): void {
    this.logBuffer.push(line);
    this.logTimer ??= setTimeout(() => this.flushLog(), 200);
  }

  private flushLog(): void {
    if (this.logTimer) clearTimeout(this.logTimer);
    this.logTimer = null;
    if (this.logBuffer.length === 0) return;
    const text = this.logBuffer.join('\n') + '\n';
    this.logBuffer = [];
    this.options.onLog(text);
  }
}
