#!/usr/bin/env node
// The demo: fine-tune the tiny Phi-architecture model on the DialogSum sample, on the CPU, with the real CLI.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env, HF_HUB_OFFLINE: '1' };
const step = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

step([join(root, 'esbuild.mjs'), '--production']);
step([join(root, 'dist/cli.js'), 'train', 'samples/dialogsum/tiny.yaml', ...process.argv.slice(2)]);
