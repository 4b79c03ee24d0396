/** What the editor's job notifications say: Evaluate Adapter's bar, and the base model's download in it and in Summarize Selection's. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DownloadProgress } from '../../protocol/engine';
import { downloadStep, EvalProgress } from '../../extension/src/job-progress';

const MiB = 2 ** 20;
const at = (done: number, total = 5000): DownloadProgress => ({ model: 'microsoft/phi-2', file: 'model-00001-of-00002.safetensors', bytesDone: done * MiB, bytesTotal: total * MiB, bytesPerSecond: 40 * MiB, filesDone: 6, filesTotal: 8 });

describe('job notifications', () => {
  it('a download: bytes done of total, percent, speed and time left; once complete, that the model loads', () => {
    assert.deepEqual(downloadStep(at(1200)), { message: 'Downloading microsoft/phi-2: 1.17 GiB of 4.88 GiB (24%), 40.0 MiB/s, ETA 1m 35s' });
    assert.deepEqual(downloadStep({ ...at(0), bytesPerSecond: 0 }), { message: 'Downloading microsoft/phi-2: 0 B of 4.88 GiB (0%), 0 B/s, ETA —' });
    assert.deepEqual(downloadStep(at(5000)), { message: 'Loading microsoft/phi-2 (4.88 GiB downloaded)…' });
    assert.equal(downloadStep(at(5000)).increment, undefined, "a download never moves a job's bar");
  });

  it("Evaluate Adapter's bar: both generation passes, then scoring, each step only forward", () => {
    const bar = new EvalProgress();
    const steps = [
      bar.step({ phase: 'base', done: 0, total: 4 }),
      bar.step({ phase: 'base', done: 2, total: 4 }),
      bar.step({ phase: 'base', done: 4, total: 4 }),
      bar.step({ phase: 'adapter', done: 0, total: 4 }),
      bar.step({ phase: 'adapter', done: 4, total: 4 }),
      bar.step({ phase: 'scoring', done: 0, total: 4 }),
      bar.step({ phase: 'scoring', done: 4, total: 4 }),
    ];
    assert.deepEqual(steps.map((s) => s.message), [
      'generating with the base model 0/4',
      'generating with the base model 2/4',
      'generating with the base model 4/4',
      'generating with the adapter 0/4',
      'generating with the adapter 4/4',
      'scoring',
      'scoring',
    ]);
    assert.deepEqual(steps.map((s) => s.increment), [0, 25, 25, 0, 50, 0, 0]);
    assert.equal(steps.reduce((sum, s) => sum + s.increment!, 0), 100);
    assert.deepEqual(new EvalProgress().step({ phase: 'base', done: 0, total: 0 }), { message: 'generating with the base model 0/0', increment: 0 });
  });
});
