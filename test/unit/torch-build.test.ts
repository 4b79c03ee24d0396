// Which torch build a machine gets (scripts/torch-build.mjs), for each platform and driver, and what
// `qlora-studio env` flags when the installed build does not fit the driver. The table is in docs/setup.md.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EnvReport } from '../../protocol/engine';
import { formatEnvReport } from '../../server/src/cli/env';
import { chooseTorchBuild, compareVersions, cudaMajorForDriver, torchMismatches } from '../../scripts/torch-build.mjs';

describe('torch build choice', () => {
  const cases: [string, string, string | null, string, string | null][] = [
    // platform, arch, driver -> variant, index
    ['linux', 'x64', null, 'cpu', 'https://download.pytorch.org/whl/cpu'],
    ['linux', 'x64', '580.95.05', 'default', null],
    ['linux', 'arm64', '590.10', 'default', null],
    ['linux', 'x64', '570.172.08', 'cu128', 'https://download.pytorch.org/whl/cu128'],
    ['linux', 'x64', '525.60.13', 'cu128', 'https://download.pytorch.org/whl/cu128'],
    ['linux', 'x64', '525.60.12', 'cpu', 'https://download.pytorch.org/whl/cpu'],
    ['linux', 'x64', '470.256.02', 'cpu', 'https://download.pytorch.org/whl/cpu'],
    ['win32', 'x64', null, 'cpu', 'https://download.pytorch.org/whl/cpu'],
    ['win32', 'x64', '581.57', 'cu130', 'https://download.pytorch.org/whl/cu130'],
    ['win32', 'x64', '566.36', 'cu128', 'https://download.pytorch.org/whl/cu128'],
    ['win32', 'x64', '528.24', 'cpu', 'https://download.pytorch.org/whl/cpu'],
    ['darwin', 'arm64', null, 'default', null],
    ['darwin', 'x64', null, 'default', null],
  ];
  for (const [platform, arch, driver, variant, index] of cases) {
    it(`${platform} ${arch}, driver ${driver ?? 'none'}: ${variant}`, () => {
      const build = chooseTorchBuild({ platform, arch, driver });
      assert.deepEqual([build.variant, build.indexUrl], [variant, index]);
      assert.ok(build.reason.length > 20, 'says why');
      if (driver) assert.ok(build.reason.includes(driver) || platform === 'darwin', build.reason);
    });
  }

  it('compares driver versions numerically, not as text', () => {
    assert.equal(compareVersions('580.65.06', '580.9'), 1);
    assert.equal(compareVersions('525.60.13', '525.60.13'), 0);
    assert.equal(compareVersions('99', '450.80.02'), -1);
    assert.deepEqual(['450.80.02', '525.85', '580.65.06', '400'].map((d) => cudaMajorForDriver(d, 'linux')), [11, 12, 13, null]);
    assert.equal(cudaMajorForDriver('580.70', 'win32'), 12); // Windows needs 580.88 for CUDA 13
  });
});

describe('installed torch against the driver', () => {
  const python = '/venv/bin/python';
  it('a CPU build on a machine with an NVIDIA GPU is flagged with the reinstall command', () => {
    const [m, ...rest] = torchMismatches({ platform: 'linux', arch: 'x64', driver: '570.86.10', torchCuda: null, python });
    assert.equal(rest.length, 0);
    assert.match(m!.problem, /CPU build.*NVIDIA GPU \(driver 570\.86\.10\)/);
    assert.equal(m!.fix, `${python} -m pip install --force-reinstall torch --index-url https://download.pytorch.org/whl/cu128`);
  });
  it('a build newer than the driver runs is flagged: update the driver, or the build it runs', () => {
    const [m] = torchMismatches({ platform: 'linux', arch: 'x64', driver: '550.54.15', torchCuda: '13.0', python });
    assert.match(m!.problem, /built for CUDA 13\.0, which needs NVIDIA driver 580\.65\.06 or newer; this one is 550\.54\.15/);
    assert.match(m!.fix, /update the NVIDIA driver, or install the build it runs: .* --index-url https:\/\/download\.pytorch\.org\/whl\/cu128$/);
  });
  it('fitting builds, CPU machines and Macs are not flagged', () => {
    assert.deepEqual(torchMismatches({ platform: 'linux', arch: 'x64', driver: '580.95.05', torchCuda: '13.0', python }), []);
    assert.deepEqual(torchMismatches({ platform: 'linux', arch: 'x64', driver: '570.86.10', torchCuda: '12.8', python }), []);
    assert.deepEqual(torchMismatches({ platform: 'linux', arch: 'x64', driver: null, torchCuda: '13.0', python }), []);
    assert.deepEqual(torchMismatches({ platform: 'darwin', arch: 'arm64', driver: null, torchCuda: null, python }), []);
  });
  it('`qlora-studio env` prints the driver and the mismatch with its fix', () => {
    const info = { available: true, version: '1', error: null };
    const report: EnvReport = {
      python: { version: '3.12.0', executable: python },
      platform: 'Linux-6.8-x86_64',
      torch: { ...info, version: '2.11.0+cpu', cuda: null, mps: false },
      transformers: info,
      peft: info,
      accelerate: info,
      bitsandbytes: info,
      cuda: { available: false, devices: [] },
      nvidia: { driver: '575.51.03' },
    };
    const text = formatEnvReport(report, { platform: 'linux', arch: 'x64' });
    assert.match(text, /^Driver\s+NVIDIA 575\.51\.03$/m);
    assert.match(text, /torch\s+2\.11\.0\+cpu\s+\(CPU build\)/);
    assert.match(text, /→ torch is a CPU build, but this machine has an NVIDIA GPU \(driver 575\.51\.03\).*Fix: \/venv\/bin\/python -m pip install --force-reinstall torch --index-url https:\/\/download\.pytorch\.org\/whl\/cu128/);
    const mac = formatEnvReport({ ...report, torch: { ...report.torch, mps: true }, nvidia: { driver: null } }, { platform: 'darwin', arch: 'arm64' });
    assert.match(mac, /\(MPS\)/);
    assert.doesNotMatch(mac, /→ torch/);
  });
});
