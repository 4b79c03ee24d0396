// Set-up progress from pip's output (scripts/pip-progress.mjs): what the dry run plans, bytes of the announced total
// as pip prints them, the unpacking, the overall percent, and the engine's requirements read from pyproject.toml.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { formatBytes, overallPercent, parseProgressLine, PipProgress, plannedInstalls, progressLine, pyprojectDependencies, STEPS } from '../../scripts/pip-progress.mjs';

const url = (file: string): string => `https://files.pythonhosted.org/packages/ab/cd/${file}`;
const report = {
  install: [
    { metadata: { name: 'torch', version: '2.9.0' }, download_info: { url: url('torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl') } },
    { metadata: { name: 'numpy', version: '2.4.6' }, download_info: { url: url('numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl') } },
    { metadata: { name: 'rouge_score', version: '0.1.2' }, download_info: { url: url('rouge_score-0.1.2.tar.gz') } },
    { metadata: { name: 'qlora-engine', version: '0.1.0' }, download_info: { url: 'file:///repo/engine', dir_info: { editable: true } } },
  ],
};

describe('set-up progress from pip', () => {
  const planned = plannedInstalls(report);
  const sizes = new Map([
    ['torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl', 900_000_000],
    ['numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl', 16_000_000],
  ]);

  it('lists what the dry run would install, with the file each downloads', () => {
    assert.deepEqual(planned.map((p) => [p.name, p.file, p.local]), [
      ['torch', 'torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl', false],
      ['numpy', 'numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl', false],
      ['rouge_score', 'rouge_score-0.1.2.tar.gz', false],
      ['qlora-engine', 'engine', true],
    ]);
    assert.deepEqual(plannedInstalls({ install: [] }), [], 'a repair with nothing missing plans nothing');
  });

  it('follows downloads byte by byte against the total, then the unpacking', () => {
    const p = new PipProgress(plannedInstalls(report), sizes);
    assert.equal(p.total, 916_000_000);
    assert.equal(p.fraction(), 0);
    const lines = [
      'Collecting torch',
      '  Downloading torch-2.9.0-cp311-cp311-manylinux_2_28_x86_64.whl (900.0 MB)',
      'Progress 0 of 900000000',
      'Progress 450000000 of 900000000',
    ];
    for (const l of lines) assert.equal(p.feed(l), true, l);
    assert.equal(p.downloaded, 450_000_000);
    assert.equal(p.message(), 'downloading torch (450.0 MB of 916.0 MB)');
    p.feed('Progress 900000000 of 900000000');
    p.feed('Collecting numpy>=1.26 (from torch)');
    p.feed('  Using cached numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl (16.0 MB)');
    assert.equal(p.downloaded, 916_000_000, 'a cached file counts as downloaded, once');
    // rouge-score's sdist: no HEAD size; pip's own announcement adds it to the total.
    p.feed('Collecting rouge-score==0.1.2');
    p.feed('  Downloading rouge_score-0.1.2.tar.gz (17 kB)');
    assert.equal(p.total, 916_017_000);
    p.feed('Progress 17000 of 17000');
    assert.equal(p.downloaded, p.total);
    assert.ok(Math.abs(p.fraction() - 0.7) < 1e-9, 'downloads are 70% of a package step');
    assert.equal(p.feed('  Building wheel for rouge-score (pyproject.toml): started'), true);
    assert.equal(p.message(), 'building rouge-score');
    assert.equal(p.feed('Installing collected packages: numpy, torch, rouge-score'), true);
    assert.equal(p.message(), 'unpacking 3 packages (916.0 MB downloaded)');
    assert.equal(p.feed('Requirement already satisfied: six in ./lib/python3.11/site-packages'), false);
    p.feed('Successfully installed numpy-2.4.6 rouge-score-0.1.2 torch-2.9.0');
    assert.equal(p.fraction(), 1);
  });

  it('weights the steps into one percent, and round-trips the line the extension reads', () => {
    assert.deepEqual(STEPS.map((s) => s.id), ['environment', 'torch', 'packages', 'models']);
    assert.equal(overallPercent(0, 0), 0);
    assert.equal(overallPercent(1, 0.5), 29);
    assert.equal(overallPercent(3, 1), 100);
    const event = { step: 2, steps: 4, id: 'torch' as const, title: 'Installing torch', percent: 29, message: 'downloading torch (450.0 MB of 916.0 MB)', downloaded: 450e6, total: 916e6 };
    assert.deepEqual(parseProgressLine(progressLine(event)), event);
    assert.equal(parseProgressLine('Collecting torch'), null);
    assert.deepEqual([formatBytes(512), formatBytes(17_000), formatBytes(3_000_151_922)], ['512 bytes', '17 kB', '3.00 GB']);
  });

  it('reads the engine\'s requirements from engine/pyproject.toml', () => {
    const text = fs.readFileSync(path.join(__dirname, '../../engine/pyproject.toml'), 'utf8');
    const deps = pyprojectDependencies(text);
    assert.ok(deps.includes('torch>=2.3') && deps.includes('rouge-score==0.1.2') && deps.includes('tensorboardX>=2.6'), deps.join(' '));
    assert.ok(!deps.some((d) => d.includes('pytest')), 'extras are not dependencies');
    assert.deepEqual(pyprojectDependencies(text, 'test').slice(deps.length), ['pytest', 'hypothesis>=6']);
  });
});
