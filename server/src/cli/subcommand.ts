/**
 * What every subcommand gets: where to write, the environment, how to reach the engine, and the shared
 * handling of failures (exit codes: 0 ok, 1 failed, 2 bad input, 130 cancelled).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BadInputCodes, ModelDidProgress } from '../../../protocol/engine';
import { RunFolder } from '../../../protocol/run-folder';
import { displayPath, type ConfigError } from '../config/errors';
import { locateConfigField } from '../config/load';
import { PythonNotFoundError } from '../engine-client/python';
import { EngineError } from '../engine-client/rpc';
import type { Disposable } from '../engine-client/rpc';
import { EngineCrashedError, EngineSupervisor } from '../engine-client/supervise';
import type { EvalInputError } from '../eval/records';
import type { Output } from './output';

export const ExitCode = { Ok: 0, Failed: 1, BadInput: 2, Cancelled: 130 } as const;

export interface SignalSource {
  on(signal: 'SIGINT', listener: () => void): unknown;
  off(signal: 'SIGINT', listener: () => void): unknown;
}

export interface CliContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: Output;
  stderr: Output;
  /** What `summarize` reads when given no file (`-`, or a pipe); process.stdin satisfies it, tests pass a Readable. */
  stdin?: Input;
  signals: SignalSource;
  /**
   * The engine to use. Default: a new supervisor per command, shut down when the command ends. Tests pass a
   * shared one (`owned: false`) so several commands reuse one engine process.
   */
  engine?: (options: { python: string | undefined }) => { supervisor: EngineSupervisor; owned: boolean };
}

/** Text piped in. */
export interface Input extends AsyncIterable<string | Buffer> {
  isTTY?: boolean;
}

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full `--help` text. */
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

export function processContext(): CliContext {
  return { cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, signals: process };
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** node:util parseArgs with usage errors as UsageError (printed with the command's usage, exit 2). */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The config of a command given an adapter (eval, summarize): the file named, else the config.yaml of the adapter's
 * run folder (the config as run). */
export function adapterConfigFile(given: string | undefined, runDir: string | null, cwd: string): string {
  if (given) return path.resolve(cwd, given);
  if (runDir && fs.existsSync(path.join(runDir, RunFolder.config))) return path.join(runDir, RunFolder.config);
  throw new UsageError('missing the config file (the adapter is not in a run folder with a config.yaml)');
}

export function openEngine(ctx: CliContext, python: string | undefined): { supervisor: EngineSupervisor; owned: boolean } {
  if (ctx.engine) return ctx.engine({ python });
  const supervisor = new EngineSupervisor({ clientName: 'qlora-studio-cli', python: () => python, env: ctx.env });
  return { supervisor, owned: true };
}

/**
 * Ctrl-C while a command waits on engine requests (eval, summarize): the first aborts them through `signal` (the
 * engine stops at its next check and a download keeps what arrived), a second kills the engine. Listens from
 * construction to `dispose`.
 */
export class Interrupts {
  private readonly abort = new AbortController();
  count = 0;

  constructor(
    private readonly ctx: CliContext,
    private readonly supervisor: EngineSupervisor,
    private readonly note: (message: string) => void,
    private readonly cancelling: string,
  ) {
    ctx.signals.on('SIGINT', this.onSigint);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  dispose(): void {
    this.ctx.signals.off('SIGINT', this.onSigint);
  }

  private readonly onSigint = (): void => {
    this.count++;
    if (this.count === 1) {
      this.note(`${this.cancelling} (Ctrl-C again stops the engine now)`);
      this.abort.abort();
    } else {
      this.note('Stopping the engine.');
      this.supervisor.kill();
    }
  };
}

/** Where an engine error points: file, line and (when known) column, plus the field. */
export interface ErrorLocation {
  message: string;
  file?: string;
  line?: number;
  column?: number;
  field?: string;
  /** What to do (the engine's remedy for this kind of failure). */
  remedy?: string;
}

/**
 * An engine error's location. One that names a config field but no file (`lora.target_modules`) is pointed
 * at that field in `configFile`, so it reads like a config error: `finetune.yaml:5:19 lora.target_modules: …`.
 */
export function locateEngineError(error: EngineError | ErrorLocation, configFile?: string): ErrorLocation {
  const data = error instanceof EngineError ? { ...error.data, message: error.message } : error;
  const located: ErrorLocation = { message: data.message, file: data.file, line: data.line, field: data.field, remedy: data.remedy };
  if (!located.file && located.field && configFile) {
    const pos = locateConfigField(configFile, located.field);
    if (pos) Object.assign(located, { file: configFile, line: pos.line, column: pos.column });
  }
  return located;
}

/**
 * `file:line[:col] field: message`, `file:line: message` or `field: message`. The engine often starts its
 * message with the same place (`train.jsonl:3:32: invalid JSON`); that prefix is folded into the location
 * instead of being printed twice.
 */
export function formatEngineError(error: ErrorLocation, cwd: string): string {
  let message = error.message;
  let where = '';
  if (error.file) {
    where = displayPath(error.file, cwd);
    const name = escapeRegExp(path.basename(error.file));
    const prefix = new RegExp(`^(?:\\S*[\\\\/])?${name}((?::\\d+)+):? `).exec(message);
    if (prefix) {
      where += prefix[1];
      message = message.slice(prefix[0].length);
    } else if (error.line) {
      where += `:${error.line}${error.column ? `:${error.column}` : ''}`;
    }
  }
  if (error.field) {
    const fieldPrefix = `${error.field}: `;
    if (message.startsWith(fieldPrefix)) message = message.slice(fieldPrefix.length);
    return where ? `${where} ${error.field}: ${message}` : `${error.field}: ${message}`;
  }
  return where ? `${where}: ${message}` : message;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function isBadInputCode(code: number): boolean {
  return BadInputCodes.includes(code);
}

/** Prints why an engine call failed and returns the exit code it means. */
export function reportFailure(error: unknown, ctx: CliContext, configFile?: string): number {
  if (error instanceof PythonNotFoundError) {
    ctx.stderr.write(`error: ${error.message}\n`);
    return ExitCode.BadInput;
  }
  if (error instanceof EngineError) {
    const located = locateEngineError(error, configFile);
    ctx.stderr.write(`${formatEngineError(located, ctx.cwd)}\n${located.remedy ? `  ${located.remedy}\n` : ''}`);
    return isBadInputCode(error.code) ? ExitCode.BadInput : ExitCode.Failed;
  }
  ctx.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  return ExitCode.Failed;
}

/**
 * Prints an input problem found before the engine is asked (an adapter folder, a data split, the text to summarize)
 * as `file:line field: message`; with --json also as an error event. A config field without a file of its own is
 * pointed at the config. Returns exit 2.
 */
export function reportInputError(error: EvalInputError, ctx: CliContext, configFile: string | null, json: boolean): number {
  const located = locateEngineError({ message: error.message, file: error.file ?? undefined, line: error.line || undefined, field: error.field ?? undefined }, configFile ?? undefined);
  if (!located.file && configFile && error.field && /^(data|eval|template|chat_template)\b/.test(error.field)) located.file = configFile;
  ctx.stderr.write(`${formatEngineError(located, ctx.cwd)}\n`);
  if (json) writeJson(ctx.stdout, { event: 'error', ...located });
  return ExitCode.BadInput;
}

/** Prints config errors (`file:line:col field: message`; with --json also an error event each); returns exit 2. */
export function reportConfigErrors(errors: readonly ConfigError[], ctx: CliContext, json: boolean): number {
  for (const error of errors) {
    ctx.stderr.write(`${error.format(ctx.cwd)}\n`);
    if (json) writeJson(ctx.stdout, { event: 'error', ...error.toJSON() });
  }
  return ExitCode.BadInput;
}

/** The engine's model/didProgress (import, export): one line per stage on stderr, or a progress event each with --json. */
export function followModelProgress(supervisor: EngineSupervisor, ctx: CliContext, json: boolean): Disposable {
  let stage = '';
  return supervisor.onNotification(ModelDidProgress, (p) => {
    if (json) writeJson(ctx.stdout, { event: 'progress', ...p });
    else if (p.stage !== stage) ctx.stderr.write(`• ${p.stage}\n`);
    stage = p.stage;
  });
}

/** JSON form of a failure, for `--json` consumers. */
export function failureJson(error: unknown, configFile?: string): Record<string, unknown> {
  if (error instanceof EngineError) return { event: 'error', code: error.code, ...locateEngineError(error, configFile) };
  if (error instanceof EngineCrashedError) return { event: 'error', message: error.message, stderr: error.stderrTail };
  return { event: 'error', message: error instanceof Error ? error.message : String(error) };
}

export function writeJson(out: Output, value: unknown): void {
  out.write(`${JSON.stringify(value)}\n`);
}
