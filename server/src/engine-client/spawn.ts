/**
 * Starts `python -m qlora_engine` with this checkout's engine/ first on PYTHONPATH, in a working folder of its
 * own (engine/), never the user's or the workspace's: `python -m` puts the working folder first on sys.path, so a
 * `yaml.py` or a `datasets/` package there would be imported instead of the real library (and run). Python 3.11+
 * also gets PYTHONSAFEPATH=1, which leaves the working folder off sys.path altogether. Every path the engine is
 * given is absolute, so its messages do not depend on the folder it runs in.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { engineDir } from './paths';

export interface SpawnEngineOptions {
  python: string;
  repoRoot: string;
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
  env.PYTHONSAFEPATH = '1';
  return { ...env, ...options.extraEnv };
}

export function spawnEngine(options: SpawnEngineOptions): ChildProcessWithoutNullStreams {
  return spawn(options.python, ['-m', 'qlora_engine'], {
    cwd: engineDir(options.repoRoot),
    env: engineEnv(options),
    stdio: ['pipe', 'pipe', 'pipe'],
    windowsHide: true,
    // Own process group: a terminal's Ctrl-C reaches the server (which cancels cleanly, saving a checkpoint)
    // but not the engine mid-step. The engine still exits when the server dies: its stdin closes.
    detached: process.platform !== 'win32',
  });
}
