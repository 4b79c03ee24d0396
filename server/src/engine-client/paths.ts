/**
 * Where the package lives on disk. The same code runs from source under tsx (server/src/engine-client/) and bundled
 * by esbuild into dist/cli.js or dist/server.js, so the root is found by walking up from this file's folder
 * to the package.json named qlora-studio rather than by a fixed number of `..`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const PackageName = 'qlora-studio';
let cached: string | null = null;

/** The folder holding package.json, engine/, schemas/ and samples/. */
export function repoRoot(): string {
  if (cached) return cached;
  const override = process.env.QLORA_STUDIO_ROOT;
  if (override) return (cached = path.resolve(override));
  const found = findRootFrom(__dirname);
  if (!found) {
    throw new Error(
      `cannot find the QLoRA Studio package folder above ${__dirname} (no package.json named "${PackageName}"); ` +
        'set QLORA_STUDIO_ROOT to the folder that holds engine/',
    );
  }
  return (cached = found);
}

export function findRootFrom(start: string): string | null {
  let dir = path.resolve(start);
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    try {
      const parsed = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: unknown };
      if (parsed.name === PackageName) return dir;
    } catch {
      // not here (or unreadable): keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** engine/ under the root: prepended to PYTHONPATH so `python -m qlora_engine` imports this checkout's engine. */
export function engineDir(root: string = repoRoot()): string {
  return path.join(root, 'engine');
}
