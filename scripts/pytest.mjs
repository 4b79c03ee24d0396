#!/usr/bin/env node
// Runs the engine's pytest suite on the engine's interpreter (QLORA_STUDIO_PYTHON or .venv), offline.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const python = process.env.QLORA_STUDIO_PYTHON || join(root, process.platform === 'win32' ? '.venv/Scripts/python.exe' : '.venv/bin/python');
if (!existsSync(python) && !process.env.QLORA_STUDIO_PYTHON) {
  console.error(`QLoRA Studio: no engine environment at ${python}. Run \`npm install\` (or \`npm run setup:engine\`) first.`);
  process.exit(1);
}
const env = { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', PYTHONPATH: join(root, 'engine') };
const r = spawnSync(python, ['-m', 'pytest', '-q', ...process.argv.slice(2)], { cwd: join(root, 'engine'), env, stdio: 'inherit' });
process.exit(r.status ?? 1);
