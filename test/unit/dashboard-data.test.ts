/** What the Runs view and the dashboard read from run folders, and how the dashboard merges live points. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { RunData } from '../../protocol/webview';
import type { DownloadProgress } from '../../protocol/engine';
import { downloadFields, formatBytes, formatDownload, formatDuration } from '../../protocol/format';
import { latestCompleted, listRunInfos, parseMetrics, parseReport, readRunData, summarizeConfig } from '../../extension/src/runs/read';
import { Store } from '../../webview/src/store';
import { repo, tempDir } from '../support/helpers';

const train = (step: number, loss: number) => JSON.stringify({ type: 'train', step, loss, learningRate: 1e-3, gradNorm: 0.5, tokensPerSecond: 100, gpuMemoryBytes: null, elapsedSeconds: step });

function makeRun(runsDir: string, id: string, record: Record<string, unknown>, metrics: string[], adapter = false): string {
  const dir = path.join(runsDir, id);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ runId: id, step: 0, totalSteps: 4, startedAt: null, endedAt: null, data: null, adapterPath: null, error: null, ...record }));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), metrics.join('\n') + '\n');
  fs.copyFileSync(path.join(repo, 'samples/dialogsum/tiny.yaml'), path.join(dir, 'config.yaml'));
  if (adapter) {
    fs.mkdirSync(path.join(dir, 'adapter'));
    fs.writeFileSync(path.join(dir, 'adapter', 'adapter_config.json'), '{}');
  }
  return dir;
}

describe('run folders', () => {
  const runsDir = tempDir();
  after(() => fs.rmSync(runsDir, { recursive: true, force: true }));

  it('metrics.jsonl: one point per step (a resumed run re-logs steps: the last wins), eval apart, torn lines skipped', () => {
    const m = parseMetrics([train(1, 3), train(2, 2.5), train(3, 2.4), train(3, 2.2), '{"type":"eval","step":3,"evalLoss":2.6}', '{"type":"train","st'].join('\n'));
    assert.deepEqual(m.train.map((p) => [p.step, p.loss]), [[1, 3], [2, 2.5], [3, 2.2]]);
    assert.deepEqual(m.eval, [{ step: 3, evalLoss: 2.6 }]);
  });

  it('config summary from config.yaml', () => {
    const c = summarizeConfig(fs.readFileSync(path.join(repo, 'samples/dialogsum/phi-2.yaml'), 'utf8'))!;
    assert.equal(c.model, 'microsoft/phi-2');
    assert.equal(c.quantization, 'nf4');
    assert.equal(c.loraR, 32);
    assert.deepEqual(c.targetModules, ['q_proj', 'k_proj', 'v_proj', 'dense']);
    assert.equal(c.learningRate, 2e-4);
    assert.equal(c.maxSteps, 1000);
    assert.equal(summarizeConfig(': : :'), null);
  });

  it('lists runs newest first with status, steps and the best metric; the latest completed one has an adapter', () => {
    makeRun(runsDir, 'a-old', { status: 'completed', step: 4, startedAt: '2026-01-01T00:00:00Z' }, [train(1, 3), train(2, 2), '{"type":"eval","step":2,"evalLoss":2.5}', '{"type":"eval","step":4,"evalLoss":2.1}'], true);
    makeRun(runsDir, 'b-new', { status: 'running', step: 1, startedAt: '2026-01-02T00:00:00Z' }, [train(1, 3.3)]);
    // best_metric: rouge1 — the best is run.json's (ROUGE-1 at step 2), not the lowest eval loss (step 4).
    const best = { metric: 'rouge1', value: 0.41, step: 2, path: 'checkpoints/step-2', adapterPath: 'best-adapter' };
    makeRun(runsDir, 'c-rouge', { status: 'completed', step: 4, startedAt: '2025-12-31T00:00:00Z', best }, [train(1, 3), '{"type":"eval","step":2,"evalLoss":2.5}', '{"type":"eval","step":4,"evalLoss":2.1}']);
    const runs = listRunInfos(runsDir);
    assert.deepEqual(runs.map((r) => r.runId), ['b-new', 'a-old', 'c-rouge']);
    assert.equal(runs[0]!.status, 'unknown', 'run.json says running but nothing trains it: interrupted');
    assert.deepEqual(runs[0]!.best, { name: 'loss', label: 'loss', value: 3.3, step: 1 });
    assert.deepEqual(runs[1]!.best, { name: 'evalLoss', label: 'eval loss', value: 2.1, step: 4 });
    assert.deepEqual(runs[2]!.best, { name: 'rouge1', label: 'ROUGE-1', value: 0.41, step: 2 });
    assert.equal(latestCompleted(runs)?.runId, 'a-old');
    const live = listRunInfos(runsDir, new Set([path.join(runsDir, 'b-new')]));
    assert.equal(live[0]!.status, 'running');
  });

  it('reads eval/report.json as qlora-studio eval writes it (EvalReport); anything else is no report', () => {
    const report = parseReport(
      JSON.stringify({
        version: 1,
        split: 'test',
        count: 1,
        metrics: [{ name: 'rouge1', base: 0.21, adapter: 0.38, improvement: 0.17, baseInterval: { low: 0.2, high: 0.22 } }],
        examples: [{ index: 0, line: 1, input: 'dialogue', references: ['ref one', 'ref two'], base: { text: 'base out', rouge: {} }, adapter: { text: 'adapter out', rouge: {} } }],
      }),
    )!;
    assert.deepEqual(report.metrics, [{ name: 'rouge1', base: 0.21, adapter: 0.38 }]);
    assert.deepEqual(report.samples, [{ input: 'dialogue', reference: 'ref one', base: 'base out', adapter: 'adapter out' }]);
    assert.equal(report.examples, 1);
    assert.equal(parseReport('not json'), null);
    assert.equal(parseReport(JSON.stringify({ metrics: { rouge1: { base: 0.2, adapter: 0.35 } } })), null, 'a shape nothing writes');
  });

  it('formats durations and sizes', () => {
    assert.equal(formatDuration(42), '42s');
    assert.equal(formatDuration(125), '2m 05s');
    assert.equal(formatDuration(3725), '1h 02m');
    assert.equal(formatDuration(null), '—');
    assert.equal(formatBytes(5 * 2 ** 30), '5.00 GiB');
  });
});

describe('dashboard store', () => {
  const runsDir = tempDir();
  after(() => fs.rmSync(runsDir, { recursive: true, force: true }));

  it('merges live points with the ones read from disk, one per step', () => {
    const dir = makeRun(runsDir, 'r1', { status: 'running', step: 2, startedAt: '2026-01-01T00:00:00Z' }, [train(1, 3), train(2, 2.5)]);
    const data: RunData = readRunData(dir, true);
    const store = new Store();
    store.apply({ type: 'runs', runs: [data.info] });
    // A live event that raced the disk read, then the disk data, then more live steps (one repeating step 2).
    store.apply({ type: 'progress', runId: 'r1', totalSteps: 4, etaSeconds: 9, point: { ...data.train[1]!, loss: 2.4 } });
    assert.deepEqual(store.series('r1', 'loss'), [[], []], 'points of a run not loaded yet are dropped');
    store.apply({ type: 'runData', data });
    store.apply({ type: 'progress', runId: 'r1', totalSteps: 4, etaSeconds: 5, point: { ...data.train[1]!, loss: 2.45 } });
    store.apply({ type: 'progress', runId: 'r1', totalSteps: 4, etaSeconds: 2, point: { ...data.train[1]!, step: 3, loss: 2.3 } });
    store.apply({ type: 'evalPoint', runId: 'r1', point: { step: 3, evalLoss: 2.7 } });
    assert.deepEqual(store.series('r1', 'loss'), [[1, 2, 3], [3, 2.45, 2.3]]);
    assert.deepEqual(store.series('r1', 'evalLoss'), [[3], [2.7]]);
    assert.deepEqual(store.series('r1', 'gpuMemoryBytes'), [[], []], 'no GPU memory on the CPU');
    assert.equal(store.loaded.get('r1')!.etaSeconds, 2);
    store.apply({ type: 'status', runId: 'r1', status: 'completed', message: null, download: null });
    assert.equal(store.loaded.get('r1')!.info.status, 'completed');
    assert.equal(store.loaded.get('r1')!.etaSeconds, null);
    assert.deepEqual(store.defaultSelection(), ['r1']);
    assert.deepEqual(store.deviceSeries('r1'), [], 'one device: no per-GPU series');
    assert.equal(store.devices('r1'), 1);
  });

  it('a run on several GPUs: each GPU’s peak memory by step, in rank order, and the device count', () => {
    const GiB = 2 ** 30;
    const line = (step: number, perDevice: unknown) => JSON.stringify({ ...JSON.parse(train(step, 2)), gpuMemoryBytes: 4 * GiB, gpuMemoryPerDevice: perDevice });
    const m = parseMetrics([line(1, [3 * GiB, 4 * GiB]), line(2, [3.5 * GiB, 4 * GiB]), line(3, 'garbage'), train(4, 1)].join('\n'));
    assert.deepEqual(m.train.map((p) => p.gpuMemoryPerDevice), [[3 * GiB, 4 * GiB], [3.5 * GiB, 4 * GiB], null, null], 'anything but a list of numbers is none');

    const dir = makeRun(runsDir, 'r2', { status: 'running', step: 2, startedAt: '2026-01-02T00:00:00Z' }, [line(1, [3 * GiB, 4 * GiB]), line(2, [3.5 * GiB, 4 * GiB])]);
    const data = readRunData(dir, true);
    const store = new Store();
    store.apply({ type: 'runData', data });
    store.apply({ type: 'progress', runId: 'r2', totalSteps: 4, etaSeconds: 1, point: { ...data.train[1]!, step: 3, gpuMemoryPerDevice: [3.6 * GiB, 4.1 * GiB] } });
    assert.deepEqual(store.deviceSeries('r2'), [
      [[1, 2, 3], [3 * GiB, 3.5 * GiB, 3.6 * GiB]],
      [[1, 2, 3], [4 * GiB, 4 * GiB, 4.1 * GiB]],
    ]);
    assert.equal(store.devices('r2'), 2, 'tiny.yaml has no train.devices: the progress tells');
    assert.deepEqual(store.series('r2', 'gpuMemoryBytes')[1], [4 * GiB, 4 * GiB, 4 * GiB], 'the memory chart keeps the busiest GPU');
  });

  it("a run's download while its stage is downloading, kept across its data arriving, gone with the next stage", () => {
    const MiB = 2 ** 20;
    const at = (done: number): DownloadProgress => ({ model: 'org/m', file: 'model.safetensors', bytesDone: done * MiB, bytesTotal: 100 * MiB, bytesPerSecond: 10 * MiB, filesDone: 4, filesTotal: 6 });
    const downloading = (done: number) => ({ type: 'status', runId: 'r4', status: 'running', message: formatDownload(at(done)), download: at(done) }) as const;
    const store = new Store();
    // Before the run's data is read (a run just started): kept for it.
    store.apply(downloading(10));
    const data = readRunData(makeRun(runsDir, 'r4', { status: 'running', step: 0, startedAt: '2026-01-03T00:00:00Z' }, []), true);
    store.apply({ type: 'runData', data });
    assert.equal(store.loaded.get('r4')!.download?.bytesDone, 10 * MiB);
    store.apply(downloading(42));
    assert.deepEqual(store.loaded.get('r4')!.download, at(42));
    store.apply({ type: 'runData', data }); // read again from disk (the dashboard shown again): the download stays
    assert.deepEqual(store.loaded.get('r4')!.download, at(42));
    store.apply({ type: 'status', runId: 'r4', status: 'running', message: 'Loading the model', download: null });
    assert.equal(store.loaded.get('r4')!.download, null, 'loading-model: the bar goes');
    assert.equal(store.loaded.get('r4')!.message, 'Loading the model');

    // A run cancelled while it downloads: its end takes the bar away even if the message said downloading.
    store.apply(downloading(50));
    store.apply({ type: 'status', runId: 'r4', status: 'cancelled', message: null, download: at(50) });
    assert.equal(store.loaded.get('r4')!.download, null);
    // The first training step also ends it (a status lost on the way).
    store.apply(downloading(60));
    store.apply({ type: 'progress', runId: 'r4', totalSteps: 4, etaSeconds: 3, point: { step: 1, loss: 2, learningRate: 1e-3, gradNorm: 1, tokensPerSecond: 10, gpuMemoryBytes: null, gpuMemoryPerDevice: null, elapsedSeconds: 1 } });
    assert.equal(store.loaded.get('r4')!.download, null);
    assert.deepEqual(downloadFields(at(42)), ['42.0 MiB / 100 MiB', '10.0 MiB/s', 'ETA 6s', 'model.safetensors'], 'what the bar shows under it');
    assert.deepEqual(downloadFields(at(100)).slice(2), ['done', 'model.safetensors']);
  });

  it('the device count from config.yaml (CPU processes report no GPU memory)', () => {
    const text = fs.readFileSync(path.join(repo, 'samples/dialogsum/tiny.yaml'), 'utf8');
    const config = summarizeConfig(text.replace(/^train:$/m, 'train:\n  devices: 2'))!;
    assert.equal(config.devices, 2);
    assert.equal(summarizeConfig(text)!.devices, null);
    const store = new Store();
    const data = readRunData(makeRun(runsDir, 'r3', { status: 'completed', step: 1 }, [train(1, 2)]), false);
    store.apply({ type: 'runData', data: { ...data, config } });
    assert.equal(store.devices('r3'), 2);
  });
});
