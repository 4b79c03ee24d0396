import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BootstrapAggregator,
  bootstrapAggregate,
  meanScores,
  percentileLinear,
  Xoshiro128,
} from '../../server/src/eval/aggregate';
import { DEFAULT_ROUGE_TYPES, RougeScorer, type Score } from '../../server/src/eval/rouge';

const FIXTURES = fileURLToPath(new URL('../fixtures/rouge/', import.meta.url));

interface AggregateFixture {
  cases: number[];
  runs: {
    mode: 'stem' | 'nostem';
    seed: number;
    n_samples: number;
    confidence_interval: number;
    mean: Record<string, number[]>;
    bootstrap: Record<string, Record<'low' | 'mid' | 'high', number[]>>;
  }[];
}

const aggregate = JSON.parse(readFileSync(FIXTURES + 'aggregate.json', 'utf8')) as AggregateFixture;
const scores = JSON.parse(readFileSync(FIXTURES + 'scores.json', 'utf8')) as {
  texts: string[];
  cases: [string, number[], number, string][];
};

/** Tolerance 0: with the same resample indices the arithmetic is numpy's, operation for operation. */
function close(got: Score, want: number[], what: string, tolerance = 0): void {
  const values = [got.precision, got.recall, got.fmeasure];
  values.forEach((v, k) => assert.ok(Math.abs(v - want[k]) <= tolerance, `${what}[${k}]: ${v} vs numpy ${want[k]}`));
}

for (const run of aggregate.runs) {
  test(`mean and bootstrap match numpy given the same resample indices (${run.mode}, seed ${run.seed})`, () => {
    const scorer = new RougeScorer({ useStemmer: run.mode === 'stem' });
    const perExample = aggregate.cases.map((i) => {
      const [, [target], prediction] = scores.cases[i];
      return scorer.score(scores.texts[target], scores.texts[prediction]);
    });
    const mean = meanScores(perExample);
    const boot = bootstrapAggregate(perExample, {
      seed: run.seed,
      nSamples: run.n_samples,
      confidenceInterval: run.confidence_interval,
    });
    assert.deepEqual(Object.keys(boot), [...DEFAULT_ROUGE_TYPES]);
    for (const type of DEFAULT_ROUGE_TYPES) {
      close(mean[type], run.mean[type], `mean ${type}`);
      for (const bound of ['low', 'mid', 'high'] as const) close(boot[type][bound], run.bootstrap[type][bound], `${bound} ${type}`);
      assert.ok(boot[type].low.fmeasure < boot[type].mid.fmeasure && boot[type].mid.fmeasure < boot[type].high.fmeasure);
    }
  });
}

test('the seeded generator is reproducible and uniform enough', () => {
  const a = new Xoshiro128(42);
  const b = new Xoshiro128(42);
  const c = new Xoshiro128(43);
  const first = Array.from({ length: 5 }, () => a.nextUint32());
  assert.deepEqual(first, Array.from({ length: 5 }, () => b.nextUint32()));
  assert.notDeepEqual(first, Array.from({ length: 5 }, () => c.nextUint32()));
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[a.nextBelow(10)]++;
  for (const n of counts) assert.ok(Math.abs(n - 10_000) < 500, `bucket ${n}`);
});

test("percentileLinear is numpy's linear method", () => {
  const sorted = [1, 2, 4, 8];
  assert.equal(percentileLinear(sorted, 0), 1);
  assert.equal(percentileLinear(sorted, 100), 8);
  assert.equal(percentileLinear(sorted, 50), 3);
  assert.equal(percentileLinear(sorted, 2.5), 1.075);
  assert.equal(percentileLinear([5], 97.5), 5);
});

test('BootstrapAggregator: identical scores give a zero-width interval; bad options are refused', () => {
  const agg = new BootstrapAggregator<'rouge1'>({ seed: 1 });
  const same: Score = { precision: 0.5, recall: 0.25, fmeasure: 0.375 }; // exact in binary: means stay exact
  for (let i = 0; i < 20; i++) agg.addScores({ rouge1: same });
  const result = agg.aggregate().rouge1;
  assert.deepEqual(result.low, same);
  assert.deepEqual(result.high, same);
  assert.throws(() => bootstrapAggregate([{ rouge1: same }], { confidenceInterval: 2 }), /confidenceInterval/);
  assert.throws(() => bootstrapAggregate([{ rouge1: same }], { nSamples: 0 }), /nSamples/);
  assert.deepEqual(bootstrapAggregate([]), {});
});
