import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RougeScorer } from '../../server/src/eval/rouge';

const FIXTURES = fileURLToPath(new URL('../fixtures/rouge/', import.meta.url));
const { texts } = JSON.parse(readFileSync(FIXTURES + 'scores.json', 'utf8')) as { texts: string[] };
const LIMIT_MS = 2000;

test(`10,000 DialogSum-length pairs, all four types, stemming on, in under ${LIMIT_MS} ms`, (t) => {
  // DialogSum test summaries (one per text, about 25 tokens), paired so that overlap varies.
  const summaries = texts.filter((s) => !s.includes('\n') && s.length >= 40 && s.length <= 400);
  assert.ok(summaries.length > 1000);
  const scorer = new RougeScorer({ useStemmer: true }); // cold stem cache: its fill is part of the time
  const started = performance.now();
  let total = 0;
  for (let i = 0; i < 10_000; i++) {
    const s = scorer.score(summaries[i % summaries.length], summaries[(i * 7 + 3) % summaries.length]);
    total += s.rouge1.fmeasure + s.rouge2.fmeasure + s.rougeL.fmeasure + s.rougeLsum.fmeasure;
  }
  const elapsed = performance.now() - started;
  t.diagnostic(`10,000 pairs in ${elapsed.toFixed(0)} ms (limit ${LIMIT_MS} ms)`);
  assert.ok(total > 0);
  assert.ok(elapsed < LIMIT_MS, `took ${elapsed.toFixed(0)} ms`);
});
