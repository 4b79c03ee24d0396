#!/usr/bin/env node
// The demo: fine-tune SmolLM2-135M-Instruct (a real pretrained model, imported at install) on the DialogSum sample, on
// the CPU, with the real CLI, then evaluate the new adapter against the zero-shot base model on held-out test records
// (ROUGE table with bootstrap intervals + report). DEMO_CONFIG picks another config (samples/dialogsum/tiny.yaml: the
// tiny random-weight model, faster, but its "gain" is only learning the summaries' surface form).
// Extra arguments go to `train` (e.g. --runs-dir DIR, --max-steps N); DEMO_EVAL_LIMIT sets how many test records
// the evaluation scores (default 24, to keep the demo within a few minutes on two cores).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env, HF_HUB_OFFLINE: '1' };
const cli = join(root, 'dist/cli.js');
const step = (args) => {
  const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

const config = process.env.DEMO_CONFIG ?? 'samples/dialogsum/smollm2.yaml';
if (config.endsWith('smollm2.yaml') && !existsSync(join(root, 'samples/models/smollm2-135m-instruct/model.safetensors'))) {
  console.error('demo: samples/models/smollm2-135m-instruct is missing; npm install imports it (or run: npm run setup:engine)');
  process.exit(1);
}
const trainArgs = process.argv.slice(2);
const at = trainArgs.findIndex((a) => a === '--runs-dir' || a.startsWith('--runs-dir='));
const runsDir = resolve(root, at < 0 ? 'runs' : trainArgs[at].includes('=') ? trainArgs[at].split('=')[1] : trainArgs[at + 1]);
const runs = () => (existsSync(runsDir) ? readdirSync(runsDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name) : []);

const started = Date.now();
step([join(root, 'esbuild.mjs'), '--production']);
const before = new Set(runs());
step([cli, 'train', config, ...trainArgs]);
// The run folder train just made: the one that was not there before (the runs registry's naming is unique).
const created = runs().filter((name) => !before.has(name) && existsSync(join(runsDir, name, 'adapter', 'adapter_config.json')));
if (created.length !== 1) {
  console.error(`demo: expected one new run with an adapter in ${runsDir}, found ${created.length}`);
  process.exit(1);
}
console.log('');
step([cli, 'eval', '--adapter', join(runsDir, created[0], 'adapter'), '--limit', process.env.DEMO_EVAL_LIMIT ?? '24']);
console.log(`\nDemo done in ${Math.round((Date.now() - started) / 1000)} s.`);
