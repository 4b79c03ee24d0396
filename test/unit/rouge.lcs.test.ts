import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lcsLength, markLcsPositions } from '../../server/src/eval/lcs';
import { referenceLcsInd } from './rouge-reference';

function marked(ref: number[], can: number[], budget?: number): number[] {
  const mark = new Uint8Array(ref.length);
  markLcsPositions(Int32Array.from(ref), Int32Array.from(can), mark, budget);
  const out: number[] = [];
  mark.forEach((m, i) => m && out.push(i));
  return out;
}

/** Deterministic pseudo-random sequences (small alphabets give many tied LCS paths, the hard case). */
function sequences(seed: number, count: number, maxLen: number): number[][] {
  let x = seed >>> 0;
  const next = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x;
  };
  return Array.from({ length: count }, () => {
    const alphabet = 2 + (next() % 6);
    return Array.from({ length: next() % (maxLen + 1) }, () => next() % alphabet);
  });
}

test("markLcsPositions picks the same LCS as rouge_score's backtrack, with and without a memory budget", () => {
  const seqs = sequences(7, 400, 60);
  let checked = 0;
  for (let k = 0; k + 1 < seqs.length; k += 2) {
    const [a, b] = [seqs[k], seqs[k + 1]];
    const want = referenceLcsInd(a, b);
    // Budgets from "everything fits" down to a few cells force one, two and more levels of checkpointing.
    for (const budget of [undefined, 200, 50, 13, 4]) {
      assert.deepEqual(marked(a, b, budget), want, `budget ${budget}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
      checked++;
    }
    assert.equal(lcsLength(a, b), want.length);
    assert.equal(lcsLength(b, a), want.length);
  }
  assert.ok(checked >= 1000);
});

test('bounded walk matches the full table on longer inputs with tight budgets', () => {
  const seqs = sequences(11, 6, 700);
  for (let k = 0; k + 1 < seqs.length; k += 2) {
    const [a, b] = [seqs[k], seqs[k + 1]];
    const want = referenceLcsInd(a, b);
    for (const budget of [5000, 900, 64]) assert.deepEqual(marked(a, b, budget), want, `budget ${budget}`);
  }
});

test('marks accumulate as a union and empty inputs mark nothing', () => {
  const mark = new Uint8Array(4);
  markLcsPositions(Int32Array.from([1, 2, 3, 4]), Int32Array.from([1, 2]), mark);
  markLcsPositions(Int32Array.from([1, 2, 3, 4]), Int32Array.from([4]), mark);
  assert.deepEqual([...mark], [1, 1, 0, 1]);
  markLcsPositions(Int32Array.from([1, 2, 3, 4]), new Int32Array(0), mark);
  assert.deepEqual([...mark], [1, 1, 0, 1]);
  assert.equal(lcsLength([], [1, 2]), 0);
});
