/** The Python to cross-check against (jinja2, transformers): the engine's, or a development venv; null if none. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repo } from './harness';

export function findPython(modules: string[]): string | null {
  const candidates = [process.env.QLORA_STUDIO_PYTHON, path.join(repo, '.venv', 'bin', 'python'), '/tmp/venvtest/bin/python'].filter((p): p is string => !!p && fs.existsSync(p));
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return null;
}

/** Runs a Python script with JSON on stdin and returns its JSON stdout. */
export function runPython(python: string, script: string, input: unknown): unknown {
  const r = spawnSync(python, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
