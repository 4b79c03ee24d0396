import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RougeScorer } from '../../server/src/eval/rouge';
import { referenceSummaryLevelLcs } from './rouge-reference';

/**
 * 20,000 tokens each side. rouge_score fills a full (m+1) x (n+1) table of Python ints for rougeL and for each
 * rougeLsum sentence pair: 4 * 10^8 cells here, gigabytes. Here rougeL keeps one row and rougeLsum's LCS walk keeps
 * checkpoint rows and one band (8 MiB each by default), so the process's peak RSS barely moves. This file runs in
 * its own process (node --test runs one process per file), so maxRSS measures this test.
 */
function texts(): [string, string] {
  let x = 12345;
  const random = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
  const vocab = Array.from({ length: 3000 }, (_, i) => 'w' + i.toString(36));
  const a = Array.from({ length: 20_000 }, () => vocab[Math.floor(random() ** 2 * vocab.length)]);
  const b = a.map((w) => (random() < 0.3 ? vocab[Math.floor(random() * vocab.length)] : w));
  return [a.join(' '), b.join(' ')];
}

test('20,000 tokens each side, one line: all four types with bounded memory', (t) => {
  const [target, prediction] = texts();
  const rssBefore = process.resourceUsage().maxRSS; // KiB
  const started = performance.now();
  const scores = new RougeScorer().score(target, prediction);
  const elapsed = performance.now() - started;
  const grownMiB = (process.resourceUsage().maxRSS - rssBefore) / 1024;
  t.diagnostic(`scored in ${elapsed.toFixed(0)} ms; peak RSS grew by ${grownMiB.toFixed(1)} MiB`);
  // A quadratic Int32 table alone would be 1.6 GB.
  assert.ok(grownMiB < 160, `peak RSS grew by ${grownMiB.toFixed(1)} MiB`);
  // One sentence each side: the union LCS is one LCS, so rougeLsum must equal rougeL exactly.
  assert.deepEqual(scores.rougeLsum, scores.rougeL);
  assert.ok(scores.rougeL.fmeasure > 0.5 && scores.rougeL.fmeasure < 1);
  assert.ok(scores.rouge1.fmeasure >= scores.rougeL.fmeasure && scores.rougeL.fmeasure > scores.rouge2.fmeasure);
});

test('20,000 tokens each side in 1,000 lines: rougeLsum over a million sentence pairs', (t) => {
  const [target, prediction] = texts().map((s) => s.split(' ').reduce((acc, w, i) => acc + (i === 0 ? '' : i % 20 === 0 ? '\n' : ' ') + w, ''));
  assert.equal(target.split('\n').length, 1000);
  const started = performance.now();
  const scores = new RougeScorer({ rougeTypes: ['rougeLsum', 'rougeL'] }).score(target, prediction);
  t.diagnostic(`scored in ${(performance.now() - started).toFixed(0)} ms`);
  // rouge_score's own algorithm (full tables, each of them small here) must agree exactly.
  const lines = (text: string): string[][] => text.split('\n').map((l) => l.split(' '));
  const [precision, recall] = referenceSummaryLevelLcs(lines(target), lines(prediction));
  assert.equal(scores.rougeLsum.precision, precision);
  assert.equal(scores.rougeLsum.recall, recall);
  assert.ok(recall > 0.3 && recall < 1);
});
