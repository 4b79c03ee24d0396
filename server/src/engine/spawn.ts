/** Starts `python -m qlora_engine` with this checkout's engine/ first on PYTHONPATH. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { engineDir } from './paths';

export interface SpawnEngineOptions {
  python: string;
  repoRoot: string;
  /** Working folder of the engine (relative paths in its messages are relative to it). */
  cwd?: string;
  /** Base environment (default process.env); HF_*, CUDA_* and the rest pass through unchanged. */
  env?: NodeJS.ProcessEnv;
  /** Extra variables, applied last. */
  extraEnv?: Record<string, string>;
}

export function engineEnv(options: Pick<SpawnEngineOptions, 'repoRoot' | 'env' | 'extraEnv'>): NodeJS.ProcessEnv {
  const base = options.env ?? process.env;
  const env: NodeJS.ProcessEnv = { ...base };
  const existing = base.PYTHONPATH;
  env.PYTHONPATH = existing ? `${engineDir(options.repoRoot)}${path.delimiter}${existing}` : engineDir(options.repoRoot);
  // Frames must leave the process as soon as they are written; logs on stderr should be line-timely too.
  env.PYTHONUNBUFFERED = '1';
  env.PYTHONIOENCODING = 'utf-8';
  return { ...env, ...options.extraEnv };
}

export function spawnEngine(options: SpawnEngineOptions): ChildProcessWithoutNullStreams {
  return spawn(options.python, ['-m', 'qlora_engine'], {
    cwd: options.cwd ?? process.cwd(),
    env: engineEnv(options),
    stdio: ['pipe', 'pipe', 'pipe'],
    windowsHide: true,
    // Own process group: a terminal's Ctrl-C reaches the server (which cancels cleanly, saving a checkpoint)
    // but not the engine mid-step. The engine still exits when the server dies: its stdin closes.
    detached: process.platform !== 'win32',
  });
}
