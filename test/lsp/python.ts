/** The Python to cross-check against (jinja2, transformers): the engine's interpreter; null if there is none. */
import { spawnSync } from 'node:child_process';
import { findPython as findEnginePython } from '../../server/src/engine-client/python';
import { repo } from './harness';

export function findPython(modules: string[]): string | null {
  let python: string;
  try {
    python = findEnginePython({ repoRoot: repo }).executable;
  } catch {
    return null;
  }
  const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  return probe.status === 0 ? python : null;
}

/** Runs a Python script with JSON on stdin and returns its JSON stdout. */
export function runPython(python: string, script: string, input: unknown): unknown {
  const r = spawnSync(python, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
