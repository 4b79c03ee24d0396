// Which torch build a machine needs, and whether an installed one fits its NVIDIA driver (issue 15).
// Plain ESM without dependencies: scripts/setup-engine.mjs runs it before anything is installed, and the CLI's
// `qlora-studio env` imports the same table (types in torch-build.d.mts). The decision table is in docs/setup.md.
import { spawnSync } from 'node:child_process';

export const TORCH_INDEX = 'https://download.pytorch.org/whl';

/**
 * Oldest driver each CUDA major version runs on through CUDA's minor-version compatibility (NVIDIA's CUDA
 * compatibility guide: 13.x >= 580, 12.x >= 525.60.13 on Linux and 528.33 on Windows, 11.x >= 450.80.02 / 452.39).
 */
export const MIN_DRIVER = {
  13: { linux: '580.65.06', win32: '580.88' },
  12: { linux: '525.60.13', win32: '528.33' },
  11: { linux: '450.80.02', win32: '452.39' },
};

/** -1, 0, 1 comparing dotted versions numerically ("570.86.10" > "525.60.13"). */
export function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** MIN_DRIVER's column for a platform (every platform with NVIDIA drivers but Windows uses the Linux numbers). */
const driverOs = (platform) => (platform === 'win32' ? 'win32' : 'linux');

/** Newest CUDA major version a driver runs, or null when it is older than CUDA 11's minimum. */
export function cudaMajorForDriver(driver, platform) {
  for (const major of [13, 12, 11]) {
    if (compareVersions(driver, MIN_DRIVER[major][driverOs(platform)]) >= 0) return major;
  }
  return null;
}

/**
 * The torch build for a machine. `driver`: the NVIDIA driver version (nvidia-smi), or null without one.
 * Returns { variant: 'default' | 'cpu' | 'cu130' | 'cu128', indexUrl: string | null (null: PyPI's default build),
 * reason }. PyPI's Linux wheels are CUDA 13 builds (CPU-capable, but ~3 GB); its Windows wheels are CPU-only; macOS
 * has one build (MPS on Apple silicon).
 */
export function chooseTorchBuild({ platform, arch, driver }) {
  if (platform === 'darwin') {
    return {
      variant: 'default',
      indexUrl: null,
      reason: arch === 'arm64' ? 'macOS on Apple silicon: the default build, with the MPS backend' : 'macOS (Intel): the default build, CPU only',
    };
  }
  if (!driver) {
    return { variant: 'cpu', indexUrl: `${TORCH_INDEX}/cpu`, reason: 'no NVIDIA driver found (nvidia-smi): the CPU build, a fraction of the CUDA build\'s size' };
  }
  const major = cudaMajorForDriver(driver, platform);
  if (major === null || major < 12) {
    return {
      variant: 'cpu',
      indexUrl: `${TORCH_INDEX}/cpu`,
      reason: `NVIDIA driver ${driver} is older than current torch builds need (CUDA 12: ${MIN_DRIVER[12][driverOs(platform)]} or newer): the CPU build until the driver is updated`,
    };
  }
  if (major === 13) {
    return platform === 'win32'
      ? { variant: 'cu130', indexUrl: `${TORCH_INDEX}/cu130`, reason: `NVIDIA driver ${driver} runs CUDA 13; PyPI's Windows torch is CPU-only, so the CUDA 13.0 build from the PyTorch index` }
      : { variant: 'default', indexUrl: null, reason: `NVIDIA driver ${driver} runs CUDA 13: PyPI's default Linux build (CUDA 13)` };
  }
  return {
    variant: 'cu128',
    indexUrl: `${TORCH_INDEX}/cu128`,
    reason: `NVIDIA driver ${driver} runs CUDA 12, not 13 (needs ${MIN_DRIVER[13][driverOs(platform)]}): the CUDA 12.8 build from the PyTorch index`,
  };
}

/** The interpreter's arguments that replace its torch with `build` (`python -m pip install --force-reinstall torch …`). */
export function torchInstallArgs(build) {
  return ['-m', 'pip', 'install', '--force-reinstall', 'torch', ...(build.indexUrl ? ['--index-url', build.indexUrl] : [])];
}

/**
 * What is wrong with an installed torch on this machine, with the command that fixes it; [] when it fits.
 * `torchCuda`: torch.version.cuda ("13.0", or null for a CPU build); `python`: the interpreter to fix.
 */
export function torchMismatches({ platform, arch, driver, torchCuda, python }) {
  const out = [];
  const want = chooseTorchBuild({ platform, arch, driver });
  const install = (build) => [python, ...torchInstallArgs(build)].join(' ');
  if (driver && !torchCuda && want.variant !== 'cpu') {
    out.push({ problem: `torch is a CPU build, but this machine has an NVIDIA GPU (driver ${driver}): training would run on the CPU`, fix: install(want) });
  }
  if (driver && torchCuda) {
    const needed = Number(torchCuda.split('.')[0]);
    const runs = cudaMajorForDriver(driver, platform);
    if (runs === null || needed > runs) {
      out.push({
        problem: `torch was built for CUDA ${torchCuda}, which needs NVIDIA driver ${MIN_DRIVER[needed]?.[driverOs(platform)] ?? 'newer'} or newer; this one is ${driver}`,
        fix: want.variant === 'cpu' ? `update the NVIDIA driver, or: ${install(want)}` : `update the NVIDIA driver, or install the build it runs: ${install(want)}`,
      });
    }
  }
  return out;
}

/** The NVIDIA driver version from nvidia-smi, or null (no driver, or nvidia-smi missing). */
export function probeDriver() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=driver_version', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0 || !r.stdout) return null;
  const version = r.stdout.trim().split('\n')[0]?.trim();
  return version && /^\d+(\.\d+)*$/.test(version) ? version : null;
}
