/**
 * Whether this machine can fine-tune, from the engine's environment report: what was found in one line (GPU, free
 * memory, NVIDIA driver, torch build) and the one next action that is missing. No 'vscode' here, so each case is a
 * unit test (test/unit/readiness.test.ts); Check Environment (commands/environment.ts) shows the verdict.
 */
import { formatBytes } from '../../protocol/format';
import type { EnvReport, GpuInfo } from '../../protocol/engine';
import { JobErrorCodes, type EnvCheckResult } from '../../protocol/lsp';
import { chooseTorchBuild, cudaMajorForDriver, MIN_DRIVER, torchInstallArgs, torchMismatches, type TorchBuild } from '../../scripts/torch-build.mjs';

export type NextAction =
  /** A VS Code command. */
  | { kind: 'command'; title: string; command: string; args?: unknown[] }
  /** The engine's interpreter with these arguments, run in a terminal (the pip install the env report suggests). */
  | { kind: 'install'; title: string; program: string; args: string[] }
  /** A web page (NVIDIA's driver downloads). */
  | { kind: 'open'; title: string; url: string };

export interface Verdict {
  /** ready: fine-tuning runs on the GPU; cpu: no NVIDIA GPU, only CPU training; blocked: something is missing. */
  state: 'ready' | 'cpu' | 'blocked';
  /** One sentence: ready, or what is missing and why it matters. */
  headline: string;
  /** What the engine found (GPU and free memory, driver, torch build); null when there is no report. */
  found: string | null;
  action: NextAction;
}

/** Where the engine runs (the extension host's machine: the engine is its child's child). */
export interface Machine {
  platform: string;
  arch: string;
}

export const DriverDownloads = 'https://www.nvidia.com/en-us/drivers/';

const setUpEngine: NextAction = { kind: 'command', title: 'Set Up Engine Environment', command: 'qloraStudio.setupEngine' };
const showLog: NextAction = { kind: 'command', title: 'Show Engine Log', command: 'qloraStudio.showLog' };
const updateDriver: NextAction = { kind: 'open', title: 'Update NVIDIA Driver', url: DriverDownloads };

/** Packages training cannot start without (bitsandbytes is checked apart: only quantization and GPUs need it). */
const Required = ['torch', 'transformers', 'peft', 'accelerate'] as const;

export function verdict(env: EnvCheckResult, machine: Machine): Verdict {
  if (env.problem || !env.report) return noEngine(env);
  const r = env.report;
  const found = describe(r);
  const blocked = (headline: string, action: NextAction): Verdict => ({ state: 'blocked', headline, found, action });

  const missing = Required.filter((name) => !r[name].available);
  if (missing.length) return blocked(`The engine's Python (${r.python.executable}) lacks ${missing.join(', ')}.`, setUpEngine);

  const driver = r.nvidia?.driver ?? null;
  const python = r.python.executable;
  const [mismatch] = torchMismatches({ ...machine, driver, torchCuda: r.torch.cuda, python });
  if (mismatch) {
    // The build this driver runs; when even that is the CPU build, only a newer driver puts the GPU to work.
    const want = chooseTorchBuild({ ...machine, driver });
    return blocked(`${mismatch.problem}.`, want.variant === 'cpu' ? updateDriver : { kind: 'install', title: `Reinstall torch (${buildLabel(want, driver, machine.platform)})`, program: python, args: torchInstallArgs(want) });
  }
  const devices = r.cuda.available ? r.cuda.devices : [];
  if (devices.length === 0 && driver) {
    // A torch that fits the driver and still no GPU: a driver too old for any current build (torch is then the CPU
    // build setup-engine picks), else something between torch and the GPU.
    if ((cudaMajorForDriver(driver, machine.platform) ?? 0) < 12) {
      const minimum = MIN_DRIVER[12][machine.platform === 'win32' ? 'win32' : 'linux'];
      return blocked(`NVIDIA driver ${driver} is older than current torch builds need (${minimum} or newer): training would run on the CPU.`, updateDriver);
    }
    return blocked(`torch sees no GPU, though NVIDIA driver ${driver} is installed (is CUDA_VISIBLE_DEVICES empty?); the engine log may say why.`, showLog);
  }
  if (devices.length === 0) {
    return {
      state: 'cpu',
      headline: "No NVIDIA GPU: 4-bit QLoRA needs one, but the sample's CPU demo (cpu-demo.yaml) trains a small model here in minutes.",
      found,
      action: { kind: 'command', title: 'New Fine-tune Project from Sample', command: 'qloraStudio.newProject' },
    };
  }
  if (!r.bitsandbytes.available) {
    return blocked('bitsandbytes is missing: 4-bit and 8-bit quantization (nf4, fp4, int8) and paged_adamw_8bit need it.', {
      kind: 'install',
      title: 'Install bitsandbytes',
      program: python,
      args: ['-m', 'pip', 'install', 'bitsandbytes'],
    });
  }
  return { state: 'ready', headline: 'Ready to fine-tune on the GPU.', found, action: { kind: 'command', title: 'Fine-tune Phi-2', command: 'qloraStudio.fineTune' } };
}

/** No report: no interpreter, an untrusted folder, or an engine that would not start. */
function noEngine(env: EnvCheckResult): Verdict {
  const p = env.problem;
  const blocked = (headline: string, action: NextAction): Verdict => ({ state: 'blocked', headline, found: null, action });
  if (p?.code === JobErrorCodes.NoPython) {
    return blocked('No engine environment yet: training runs in a Python with torch, transformers, peft and bitsandbytes.', setUpEngine);
  }
  if (p?.code === JobErrorCodes.Untrusted) {
    return blocked('Restricted Mode: the engine does not start in an untrusted folder (its settings and configs could run code).', {
      kind: 'command',
      title: 'Manage Workspace Trust',
      command: 'workbench.trust.manage',
    });
  }
  return blocked(`The engine did not start${p ? `: ${p.message}` : '.'}`, showLog);
}

/** "NVIDIA GeForce RTX 4090 (22.1 GiB free of 24.0 GiB) · NVIDIA driver 550.54.15 · torch 2.8.0 (CUDA 12.8)". */
export function describe(r: EnvReport): string {
  const devices = r.cuda.available ? r.cuda.devices : [];
  const gpu = (g: GpuInfo): string => `${g.name} (${formatBytes(g.freeMemory)} free of ${formatBytes(g.totalMemory)})`;
  const gpus = devices.length === 0 ? 'no CUDA GPU' : devices.length === 1 ? gpu(devices[0]!) : devices.map((g) => `GPU ${g.index} ${gpu(g)}`).join(', ');
  const driver = r.nvidia?.driver ? `NVIDIA driver ${r.nvidia.driver}` : 'no NVIDIA driver';
  const build = r.torch.cuda ? `CUDA ${r.torch.cuda}` : r.torch.mps ? 'MPS' : 'CPU build';
  const torch = r.torch.available ? `torch ${r.torch.version ?? '(version unknown)'} (${build})` : 'no torch';
  return [gpus, driver, torch].join(' · ');
}

/** "CUDA 12.8" for the cu128 build; PyPI's default Linux build is CUDA 13. */
function buildLabel(build: TorchBuild, driver: string | null, platform: string): string {
  if (build.variant === 'cu128') return 'CUDA 12.8';
  if (build.variant === 'cu130') return 'CUDA 13.0';
  return driver && cudaMajorForDriver(driver, platform) === 13 ? 'CUDA 13' : 'default build';
}
