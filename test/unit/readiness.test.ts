// Check Environment's verdict (extension/src/readiness.ts): from the engine's report, what was found in one line and
// the one next action, for each state a machine can be in.
import assert from 'node:assert/strict';
import { describe as suite, it } from 'node:test';
import type { EnvReport, GpuInfo } from '../../protocol/engine';
import { JobErrorCodes, type EnvCheckResult, type JobProblem } from '../../protocol/lsp';
import { describe, DriverDownloads, verdict, type Machine } from '../../extension/src/readiness';

const linux: Machine = { platform: 'linux', arch: 'x64' };
const python = '/home/u/.config/Code/User/globalStorage/qlora-studio.qlora-studio/engine-env/bin/python';
const GiB = 1024 ** 3;

const h200: GpuInfo = { index: 0, name: 'NVIDIA H200', totalMemory: 140 * GiB, freeMemory: 139.5 * GiB, capability: [9, 0], bf16: true };
const installed = (version: string) => ({ available: true, version, error: null });
const absent = { available: false, version: null, error: "ModuleNotFoundError: No module named 'x'" };

/** A machine's report: CUDA torch on an H200 with driver 570 unless told otherwise. */
function report(change: { driver?: string | null; torchCuda?: string | null; devices?: GpuInfo[]; mps?: boolean; missing?: (keyof EnvReport)[] } = {}): EnvReport {
  const devices = change.devices ?? (change.torchCuda === null ? [] : [h200]);
  const r: EnvReport = {
    python: { version: '3.12.3', executable: python },
    platform: 'Linux-6.8.0-x86_64-with-glibc2.39',
    torch: { ...installed('2.8.0'), cuda: change.torchCuda === undefined ? '12.8' : change.torchCuda, mps: change.mps ?? false },
    transformers: installed('4.56.1'),
    peft: installed('0.17.1'),
    accelerate: installed('1.10.1'),
    bitsandbytes: installed('0.47.0'),
    cuda: { available: devices.length > 0, devices },
    nvidia: { driver: change.driver === undefined ? '570.86.10' : change.driver },
  };
  for (const name of change.missing ?? []) Object.assign(r, { [name]: name === 'torch' ? { ...absent, cuda: null } : absent });
  return r;
}

const ok = (r: EnvReport): EnvCheckResult => ({ python, pythonSource: 'venv', report: r, problem: null });
const failed = (code: number, message: string): EnvCheckResult => {
  const problem: JobProblem = { code, message, fix: null };
  return { python: null, pythonSource: null, report: null, problem };
};

suite('Check Environment: the one next action', () => {
  it('no engine environment: Set Up Engine Environment', () => {
    const v = verdict(failed(JobErrorCodes.NoPython, 'No Python for the engine'), linux);
    assert.equal(v.state, 'blocked');
    assert.match(v.headline, /No engine environment/);
    assert.equal(v.found, null);
    assert.deepEqual(v.action, { kind: 'command', title: 'Set Up Engine Environment', command: 'qloraStudio.setupEngine' });
  });

  it('an environment without the packages training needs: Set Up Engine Environment (a repair)', () => {
    const v = verdict(ok(report({ missing: ['peft', 'accelerate'] })), linux);
    assert.match(v.headline, /lacks peft, accelerate/);
    assert.equal(v.action.kind === 'command' && v.action.command, 'qloraStudio.setupEngine');
  });

  it('an untrusted folder: Manage Workspace Trust; an engine that would not start: its log', () => {
    assert.deepEqual(verdict(failed(JobErrorCodes.Untrusted, 'Restricted Mode'), linux).action, {
      kind: 'command',
      title: 'Manage Workspace Trust',
      command: 'workbench.trust.manage',
    });
    const crashed = verdict(failed(JobErrorCodes.EngineFailed, 'the engine exited with code 1'), linux);
    assert.match(crashed.headline, /did not start: the engine exited with code 1/);
    assert.equal(crashed.action.kind === 'command' && crashed.action.command, 'qloraStudio.showLog');
  });

  it('a CPU build of torch on a machine with an NVIDIA GPU: the reinstall the env report suggests, for the build the driver runs', () => {
    const v = verdict(ok(report({ torchCuda: null })), linux);
    assert.equal(v.state, 'blocked');
    assert.match(v.headline, /^torch is a CPU build, but this machine has an NVIDIA GPU \(driver 570\.86\.10\)/);
    assert.equal(v.found, 'no CUDA GPU · NVIDIA driver 570.86.10 · torch 2.8.0 (CPU build)');
    assert.deepEqual(v.action, {
      kind: 'install',
      title: 'Reinstall torch (CUDA 12.8)',
      program: python,
      args: ['-m', 'pip', 'install', '--force-reinstall', 'torch', '--index-url', 'https://download.pytorch.org/whl/cu128'],
    });
    // A driver that runs CUDA 13 gets PyPI's default (CUDA 13) build on Linux, the cu130 index on Windows.
    const cu13 = verdict(ok(report({ torchCuda: null, driver: '580.95.05' })), linux).action;
    assert.deepEqual(cu13.kind === 'install' && [cu13.title, cu13.args], ['Reinstall torch (CUDA 13)', ['-m', 'pip', 'install', '--force-reinstall', 'torch']]);
    const win = verdict(ok(report({ torchCuda: null, driver: '581.57' })), { platform: 'win32', arch: 'x64' }).action;
    assert.deepEqual(win.kind === 'install' && [win.title, win.args.at(-1)], ['Reinstall torch (CUDA 13.0)', 'https://download.pytorch.org/whl/cu130']);
  });

  it('a driver too old for the torch build: the build it runs, or a newer driver when no current build runs on it', () => {
    const newer = verdict(ok(report({ torchCuda: '13.0', driver: '550.54.15', devices: [] })), linux);
    assert.match(newer.headline, /built for CUDA 13\.0, which needs NVIDIA driver 580\.65\.06 or newer; this one is 550\.54\.15/);
    assert.deepEqual(newer.action.kind === 'install' && newer.action.args.at(-1), 'https://download.pytorch.org/whl/cu128');

    const ancient = verdict(ok(report({ torchCuda: '12.8', driver: '470.256.02', devices: [] })), linux);
    assert.match(ancient.headline, /built for CUDA 12\.8.*this one is 470\.256\.02/);
    assert.deepEqual(ancient.action, { kind: 'open', title: 'Update NVIDIA Driver', url: DriverDownloads });

    // setup-engine gives such a driver the CPU build, which the env report does not flag; the GPU still idles.
    const cpu = verdict(ok(report({ torchCuda: null, driver: '470.256.02' })), linux);
    assert.match(cpu.headline, /NVIDIA driver 470\.256\.02 is older than current torch builds need \(525\.60\.13 or newer\)/);
    assert.deepEqual(cpu.action, { kind: 'open', title: 'Update NVIDIA Driver', url: DriverDownloads });
  });

  it('an older CUDA 11 torch that its driver runs and that sees the GPU is not flagged', () => {
    assert.equal(verdict(ok(report({ torchCuda: '11.8', driver: '470.256.02' })), linux).state, 'ready');
  });

  it('a CUDA build that fits the driver but sees no GPU: the engine log', () => {
    const v = verdict(ok(report({ devices: [] })), linux);
    assert.match(v.headline, /torch sees no GPU, though NVIDIA driver 570\.86\.10 is installed/);
    assert.equal(v.action.kind === 'command' && v.action.command, 'qloraStudio.showLog');
  });

  it('a GPU without bitsandbytes: install it into the engine', () => {
    const v = verdict(ok(report({ missing: ['bitsandbytes'] })), linux);
    assert.match(v.headline, /bitsandbytes is missing/);
    assert.deepEqual(v.action, { kind: 'install', title: 'Install bitsandbytes', program: python, args: ['-m', 'pip', 'install', 'bitsandbytes'] });
  });

  it('all good: Fine-tune Phi-2, with the GPU, its free memory, the driver and the torch build', () => {
    const v = verdict(ok(report()), linux);
    assert.equal(v.state, 'ready');
    assert.equal(v.headline, 'Ready to fine-tune on the GPU.');
    assert.equal(v.found, 'NVIDIA H200 (140 GiB free of 140 GiB) · NVIDIA driver 570.86.10 · torch 2.8.0 (CUDA 12.8)');
    assert.deepEqual(v.action, { kind: 'command', title: 'Fine-tune Phi-2', command: 'qloraStudio.fineTune' });
    // torch sees the GPU though nvidia-smi is not on PATH: nothing to flag.
    assert.equal(verdict(ok(report({ driver: null })), linux).state, 'ready');
  });

  it('no GPU at all: the CPU demo from the sample', () => {
    const v = verdict(ok(report({ driver: null, torchCuda: null })), linux);
    assert.equal(v.state, 'cpu');
    assert.match(v.headline, /No NVIDIA GPU.*cpu-demo\.yaml/);
    assert.equal(v.found, 'no CUDA GPU · no NVIDIA driver · torch 2.8.0 (CPU build)');
    assert.deepEqual(v.action, { kind: 'command', title: 'New Fine-tune Project from Sample', command: 'qloraStudio.newProject' });
    // Linux's default torch is a CUDA build, also on machines without a GPU; a Mac's shows MPS.
    assert.equal(verdict(ok(report({ driver: null, torchCuda: '13.0', devices: [] })), linux).state, 'cpu');
    const mac = verdict(ok(report({ driver: null, torchCuda: null, mps: true })), { platform: 'darwin', arch: 'arm64' });
    assert.equal(mac.state, 'cpu');
    assert.match(mac.found!, /torch 2\.8\.0 \(MPS\)$/);
  });
});

suite('what was found, in one line', () => {
  it('names every GPU with its free memory', () => {
    const second: GpuInfo = { ...h200, index: 1, freeMemory: 20 * GiB };
    assert.equal(
      describe(report({ devices: [h200, second] })),
      'GPU 0 NVIDIA H200 (140 GiB free of 140 GiB), GPU 1 NVIDIA H200 (20.0 GiB free of 140 GiB) · NVIDIA driver 570.86.10 · torch 2.8.0 (CUDA 12.8)',
    );
  });
  it('says when torch is not installed', () => {
    assert.match(describe(report({ missing: ['torch'] })), / · no torch$/);
  });
});
