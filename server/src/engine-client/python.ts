/**
 * Which Python runs the engine, in order: an explicit option (CLI flag / `qloraStudio.pythonPath`),
 * $QLORA_STUDIO_PYTHON, the environment in $QLORA_STUDIO_VENV (the extension sets it to its global storage, where
 * Set Up Engine Environment puts it, so it outlives extension updates), the project's .venv (made by `npm install` /
 * `npm run setup:engine`). Nothing else is guessed: a system Python without torch would only fail later with a
 * worse message.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PythonEnvVar = 'QLORA_STUDIO_PYTHON';
/** A managed environment's folder outside the project (scripts/setup-engine.mjs creates it there too). */
export const VenvEnvVar = 'QLORA_STUDIO_VENV';

export type PythonSource = 'option' | 'env' | 'venv';
export interface PythonChoice {
  executable: string;
  source: PythonSource;
}

export interface FindPythonOptions {
  /** Explicit interpreter (path, or a command name looked up on PATH); empty string = not set. */
  explicit?: string | null;
  repoRoot: string;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
}

export class PythonNotFoundError extends Error {
  override readonly name = 'PythonNotFoundError';
}

export function venvPython(repoRoot: string, platform: NodeJS.Platform = process.platform): string {
  return pythonIn(path.join(repoRoot, '.venv'), platform);
}

/** The interpreter inside a virtual environment's folder. */
export function pythonIn(venv: string, platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? path.join(venv, 'Scripts', 'python.exe') : path.join(venv, 'bin', 'python');
}

export function howToFix(repoRoot: string): string {
  return (
    `Create the engine environment: run \`npm install\` or \`npm run setup:engine\` in ${repoRoot} ` +
    `(it makes .venv with torch, transformers, peft and bitsandbytes), ` +
    `or set ${PythonEnvVar} to a Python that has them.`
  );
}

export function findPython(options: FindPythonOptions): PythonChoice {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const explicit = options.explicit?.trim();
  if (explicit) {
    const resolved = resolveExecutable(explicit, env, platform);
    if (!resolved) throw new PythonNotFoundError(`the Python interpreter ${explicit} (explicit setting) does not exist.`);
    return { executable: resolved, source: 'option' };
  }
  const fromEnv = env[PythonEnvVar]?.trim();
  if (fromEnv) {
    const resolved = resolveExecutable(fromEnv, env, platform);
    if (!resolved) {
      throw new PythonNotFoundError(
        `${PythonEnvVar}=${fromEnv} does not exist. Point it at a Python with the engine's packages, ` +
          `or unset it to use ${venvPython(options.repoRoot, platform)}.`,
      );
    }
    return { executable: resolved, source: 'env' };
  }
  const managed = env[VenvEnvVar]?.trim();
  const managedPython = managed ? pythonIn(path.resolve(expandHome(managed, env)), platform) : null;
  if (managedPython && isFile(managedPython)) return { executable: managedPython, source: 'venv' };
  const venv = venvPython(options.repoRoot, platform);
  if (isFile(venv)) return { executable: venv, source: 'venv' };
  const looked = managedPython ? `${managedPython} or ${venv}` : venv;
  throw new PythonNotFoundError(`No Python environment for the engine (looked for ${looked}). ${howToFix(options.repoRoot)}`);
}

/** A path (absolute, or relative to cwd) that exists, or a bare command name found on PATH. */
function resolveExecutable(value: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string | null {
  const hasSeparator = value.includes('/') || (platform === 'win32' && value.includes('\\'));
  if (hasSeparator || path.isAbsolute(value)) {
    const full = path.resolve(expandHome(value, env));
    return isFile(full) ? full : null;
  }
  const dirs = (env.PATH ?? env.Path ?? '').split(platform === 'win32' ? ';' : ':').filter(Boolean);
  const exts = platform === 'win32' ? ['', '.exe', '.cmd', '.bat'] : [''];
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = path.join(dir, value + ext);
      if (isFile(candidate)) return candidate;
    }
  }
  return null;
}

export function expandHome(value: string, env: NodeJS.ProcessEnv = process.env): string {
  if (value === '~' || value.startsWith('~/') || value.startsWith('~\\')) {
    const home = env.HOME ?? env.USERPROFILE ?? '';
    return path.join(home, value.slice(1));
  }
  return value;
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
