/**
 * EngineSupervisor owns the engine process: started lazily by the first request (with the `initialize`
 * handshake), stderr always drained line by line (to an optional log file and to listeners), restarted by the
 * next request after a crash, and shut down gracefully (`shutdown`, then a kill after a timeout).
 * A crash while requests are in flight rejects them with an EngineCrashedError quoting the last stderr lines.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { Initialize, Shutdown, type InitializeResult } from '../../../protocol/engine';
import type { EngineNotifications, EngineRequests, NotificationMethod, RequestMethod } from './methods';
import { repoRoot as defaultRepoRoot } from './paths';
import { findPython } from './python';
import { ConnectionClosedError, RpcConnection, type Disposable } from './rpc';
import { spawnEngine } from './spawn';

export interface EngineSupervisorOptions {
  clientName: string;
  repoRoot?: string;
  /** Explicit interpreter (setting / flag); resolved at each start, so a fixed setting applies on restart. */
  python?: () => string | null | undefined;
  env?: NodeJS.ProcessEnv;
  /** Appends every stderr line of every engine process here. */
  logFile?: string | null;
  /** Starts the process; default `python -m qlora_engine` (tests pass a fake engine). */
  launch?: () => ChildProcessWithoutNullStreams;
  /** Lines of stderr quoted in a crash error (default 20). */
  stderrTailLines?: number;
  /** How long `shutdown` waits for a clean exit before killing (default 5000 ms). */
  shutdownTimeoutMs?: number;
}

export interface EngineExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the supervisor asked for it (shutdown or kill). */
  expected: boolean;
  /** The error pending requests were rejected with. */
  error: Error;
}

export class EngineCrashedError extends Error {
  override readonly name = 'EngineCrashedError';
  constructor(
    message: string,
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: readonly string[],
  ) {
    super(message);
  }
}

interface Session {
  child: ChildProcessWithoutNullStreams;
  connection: RpcConnection;
  ready: Promise<InitializeResult>;
  expectedExit: boolean;
  closed: Promise<EngineExit>;
  tail: string[];
}

export class EngineSupervisor {
  private session: Session | null = null;
  private report: InitializeResult | null = null;
  private readonly notificationHandlers = new Map<string, Set<(params: unknown) => void>>();
  private readonly stderrListeners = new Set<(line: string) => void>();
  private readonly exitListeners = new Set<(exit: EngineExit) => void>();
  private log: fs.WriteStream | null = null;
  private starts = 0;
  private lastTail: string[] = [];

  constructor(private readonly options: EngineSupervisorOptions) {}

  /** The last `initialize` result (the environment report), once an engine has started. */
  get envReport(): InitializeResult | null {
    return this.report;
  }
  get running(): boolean {
    return this.session !== null;
  }
  /** Processes started so far (1 + restarts). */
  get startCount(): number {
    return this.starts;
  }
  get pid(): number | undefined {
    return this.session?.child.pid;
  }

  /** Starts the engine if needed and resolves with its environment report. */
  async start(): Promise<InitializeResult> {
    return (this.session ??= this.launch()).ready;
  }

  /** `signal` cancels the request in flight ($/cancelRequest): the engine answers RequestCancelled where it can stop. */
  async request<M extends RequestMethod>(method: M, params: EngineRequests[M]['params'], signal?: AbortSignal): Promise<EngineRequests[M]['result']> {
    const session = (this.session ??= this.launch());
    await session.ready;
    try {
      return await session.connection.sendRequest<EngineRequests[M]['params'], EngineRequests[M]['result']>(method, params, signal);
    } catch (error) {
      throw error instanceof EngineCrashedError ? withMethod(error, method) : error;
    }
  }

  onNotification<M extends NotificationMethod>(method: M, handler: (params: EngineNotifications[M]) => void): Disposable {
    let set = this.notificationHandlers.get(method);
    if (!set) this.notificationHandlers.set(method, (set = new Set()));
    const h = handler as (params: unknown) => void;
    set.add(h);
    return { dispose: () => set.delete(h) };
  }

  /** Every engine stderr line, as it arrives. */
  onStderr(listener: (line: string) => void): Disposable {
    this.stderrListeners.add(listener);
    return { dispose: () => this.stderrListeners.delete(listener) };
  }

  onExit(listener: (exit: EngineExit) => void): Disposable {
    this.exitListeners.add(listener);
    return { dispose: () => this.exitListeners.delete(listener) };
  }

  /** Last stderr lines of the current (or last) engine process. */
  get stderrTail(): readonly string[] {
    return this.lastTail;
  }

  /** Asks the engine to shut down; kills it if it has not exited after the timeout. Resolves once it is gone. */
  async shutdown(timeoutMs = this.options.shutdownTimeoutMs ?? 5000): Promise<void> {
    const session = this.session;
    if (!session) return this.closeLog();
    session.expectedExit = true;
    const deadline = Date.now() + timeoutMs;
    const started = await withTimeout(session.ready, timeoutMs).then(
      () => true,
      () => false,
    );
    if (started) {
      await withTimeout(session.connection.sendRequest(Shutdown, null), timeoutMs).catch(() => undefined);
      await session.connection.sendNotification(Exit, null).catch(() => undefined);
    }
    if (!session.child.stdin.destroyed) session.child.stdin.end();
    const exited = await withTimeout(session.closed, Math.max(0, deadline - Date.now())).then(
      () => true,
      () => false,
    );
    if (!exited) {
      session.child.kill('SIGKILL');
      await session.closed;
    }
    await this.closeLog();
  }

  /** Kills the engine now (second Ctrl-C, or a stuck process). */
  kill(): void {
    const session = this.session;
    if (!session) return;
    session.expectedExit = true;
    // Reject what is in flight now, before a write to the dying process can fail with EPIPE first.
    session.connection.close(new ConnectionClosedError('the engine was shut down'));
    session.child.kill('SIGKILL');
  }

  private launch(): Session {
    const child = this.options.launch ? this.options.launch() : this.spawnPython();
    this.starts++;
    const tail: string[] = [];
    this.lastTail = tail;
    const connection = new RpcConnection(child.stdout, child.stdin, {
      closeOnEnd: false,
      onProtocolError: (error) => this.writeLog(`[qlora-studio] protocol error: ${error.message}`),
    });
    connection.onAnyNotification((method, params) => {
      for (const handler of this.notificationHandlers.get(method) ?? []) handler(params);
    });
    this.drainStderr(child, tail);
    this.writeLog(`[qlora-studio] engine started (pid ${child.pid ?? '?'})`);

    let resolveClosed!: (exit: EngineExit) => void;
    const closed = new Promise<EngineExit>((resolve) => (resolveClosed = resolve));
    const session: Session = { child, connection, ready: undefined as never, expectedExit: false, closed, tail };
    const killOnExit = (): void => void child.kill('SIGKILL');
    process.once('exit', killOnExit);

    let finished = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (finished) return;
      finished = true;
      process.off('exit', killOnExit);
      const error = session.expectedExit
        ? new ConnectionClosedError('the engine was shut down')
        : crashError(code, signal, tail, spawnError);
      this.writeLog(`[qlora-studio] engine exited (${describeExit(code, signal)})`);
      connection.close(error);
      if (this.session === session) this.session = null;
      const exit: EngineExit = { code, signal, expected: session.expectedExit, error };
      resolveClosed(exit);
      for (const listener of this.exitListeners) listener(exit);
    };
    child.on('close', (code, signal) => finish(code, signal));
    child.on('error', (error) => {
      // Spawn failures (ENOENT, EACCES) may not be followed by 'close'.
      if (child.pid === undefined) finish(null, null, error);
      else this.writeLog(`[qlora-studio] engine process error: ${error.message}`);
    });

    session.ready = connection
      .sendRequest<EngineRequests[typeof Initialize]['params'], InitializeResult>(Initialize, {
        clientName: this.options.clientName,
      })
      .then(
        (report) => {
          this.report = report;
          return report;
        },
        (error: unknown) => {
          throw error instanceof EngineCrashedError ? withMethod(error, Initialize) : error;
        },
      );
    session.ready.catch(() => {}); // observed by request()/start(); never an unhandled rejection here
    return session;
  }

  private spawnPython(): ChildProcessWithoutNullStreams {
    const root = this.options.repoRoot ?? defaultRepoRoot();
    const python = findPython({ explicit: this.options.python?.(), repoRoot: root, env: this.options.env });
    return spawnEngine({ python: python.executable, repoRoot: root, env: this.options.env });
  }

  private drainStderr(child: ChildProcessWithoutNullStreams, tail: string[]): void {
    const decoder = new StringDecoder('utf8');
    const max = this.options.stderrTailLines ?? 20;
    let partial = '';
    const emit = (line: string): void => {
      tail.push(line);
      if (tail.length > max) tail.shift();
      this.writeLog(line);
      for (const listener of this.stderrListeners) listener(line);
    };
    child.stderr.on('data', (chunk: Buffer) => {
      const lines = (partial + decoder.write(chunk)).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) emit(line.replace(/\r$/, ''));
    });
    child.stderr.on('end', () => {
      const rest = partial + decoder.end();
      partial = '';
      if (rest) emit(rest.replace(/\r$/, ''));
    });
  }

  private writeLog(line: string): void {
    const file = this.options.logFile;
    if (!file) return;
    if (!this.log) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      this.log = fs.createWriteStream(file, { flags: 'a' });
      this.log.on('error', () => {}); // a full disk must not take the server down
    }
    this.log.write(line + '\n');
  }

  private closeLog(): Promise<void> {
    const log = this.log;
    this.log = null;
    if (!log) return Promise.resolve();
    return new Promise((resolve) => log.end(resolve));
  }
}

/** LSP's lifecycle notification after `shutdown`; the engine accepts it (not part of protocol/engine.ts). */
const Exit = 'exit';

function crashError(code: number | null, signal: NodeJS.Signals | null, tail: readonly string[], spawnError?: Error): EngineCrashedError {
  const what = spawnError ? `the engine could not start: ${spawnError.message}` : `the engine exited unexpectedly (${describeExit(code, signal)})`;
  const quoted = tail.length ? `\nLast lines of the engine's stderr:\n${tail.map((l) => `  ${l}`).join('\n')}` : '\nThe engine wrote nothing to stderr.';
  return new EngineCrashedError(what + quoted, code, signal, [...tail]);
}

function withMethod(error: EngineCrashedError, method: string): EngineCrashedError {
  const [first, ...rest] = error.message.split('\n');
  const message = [`${first} during ${method}`, ...rest].join('\n');
  return new EngineCrashedError(message, error.code, error.signal, error.stderrTail);
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `exit code ${code ?? '?'}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
