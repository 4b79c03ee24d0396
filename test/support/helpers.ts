/** Shared test helpers: temp folders, captured output, fake signals, the fake engine. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CliContext, SignalSource } from '../../server/src/cli/subcommand';
import type { Output } from '../../server/src/cli/output';
import { EngineSupervisor, type EngineSupervisorOptions } from '../../server/src/engine-client/supervise';

export const repo = path.resolve(__dirname, '..', '..');
export const fakeEnginePath = path.join(repo, 'test', 'fixtures', 'fake-engine.mjs');

/**
 * A completed run made by hand under `parent` (config.yaml, the sample's train and test splits and template, an
 * adapter, a model folder without weights), as training leaves one: what eval and summarize jobs start from.
 */
export function completedRun(parent: string, name: string): string {
  const run = path.join(parent, name);
  fs.mkdirSync(path.join(run, 'adapter'), { recursive: true });
  fs.mkdirSync(path.join(run, 'model'));
  for (const f of ['train.jsonl', 'test.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(repo, 'samples/dialogsum', f), path.join(run, f));
  fs.writeFileSync(path.join(run, 'config.yaml'), 'model: ./model\nquantization: none\ndata: { train: train.jsonl, test: test.jsonl }\ntemplate: summarize.prompt.yaml\n');
  fs.writeFileSync(path.join(run, 'adapter', 'adapter_config.json'), '{}');
  fs.writeFileSync(path.join(run, 'adapter', 'adapter_model.safetensors'), '');
  fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ runId: name, status: 'completed' }));
  return run;
}

/** A fresh temp folder, removed by the returned cleanup. */
export function tempDir(prefix = 'qlora-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export class Captured implements Output {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns = 100,
  ) {}
  write(text: string): boolean {
    this.text += text;
    return true;
  }
  lines(): string[] {
    return this.text.split('\n').filter((l) => l.length > 0);
  }
}

export class FakeSignals extends EventEmitter implements SignalSource {
  interrupt(): void {
    this.emit('SIGINT');
  }
}

export function launchFakeEngine(env: Record<string, string> = {}): () => ChildProcessWithoutNullStreams {
  return () => spawn(process.execPath, [fakeEnginePath], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

export function fakeSupervisor(options: Partial<EngineSupervisorOptions> = {}, env: Record<string, string> = {}): EngineSupervisor {
  return new EngineSupervisor({ clientName: 'test', launch: launchFakeEngine(env), shutdownTimeoutMs: 2000, ...options });
}

/** A CLI context writing into buffers, with a given engine shared across commands. */
export function cliContext(cwd: string, supervisor?: EngineSupervisor, env: NodeJS.ProcessEnv = process.env) {
  const stdout = new Captured();
  const stderr = new Captured();
  const signals = new FakeSignals();
  const ctx: CliContext = {
    cwd,
    env,
    stdout,
    stderr,
    signals,
    engine: supervisor ? () => ({ supervisor, owned: false }) : undefined,
  };
  return { ctx, stdout, stderr, signals };
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}
