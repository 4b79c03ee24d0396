/** The evaluation's generation order (server/src/eval/schedule.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunksOf, lengthOrder } from '../../server/src/eval/schedule';

describe('eval schedule', () => {
  it('orders longest first, ties in file order', () => {
    assert.deepEqual(lengthOrder([5, 9, 5, 1, 9]), [1, 4, 0, 2, 3]);
    assert.deepEqual(lengthOrder([]), []);
  });

  it('cuts the order into chunks that cover every index once', () => {
    const order = lengthOrder([3, 8, 1, 7, 7, 2, 9]);
    const chunks = chunksOf(order, 3);
    assert.deepEqual(chunks, [[6, 1, 3], [4, 0, 5], [2]]);
    assert.deepEqual(chunks.flat().sort(), [0, 1, 2, 3, 4, 5, 6]);
    assert.throws(() => chunksOf(order, 0), /chunk size/);
  });
});
