/**
 * The order evaluation generates in: longest prompts first, so each batch holds prompts of similar length. A batch
 * is left-padded to its longest prompt and decodes until its longest completion ends, so a batch that mixes a
 * 60-token prompt with a 600-token one spends most of its prefill on padding. Sorting keeps the padding small, and
 * longest-first puts an out-of-memory failure, if any, at the start instead of minutes into the run. The caller
 * puts every result back at its record's index, so the report keeps the file's order.
 */

/** Indices of `lengths`, longest first; equal lengths keep their file order (the order is deterministic). */
export function lengthOrder(lengths: readonly number[]): number[] {
  return lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
}

/** `order` cut into consecutive chunks of `size` indices (the last may be shorter). */
export function chunksOf(order: readonly number[], size: number): number[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size must be a whole number >= 1 (got ${size})`);
  const out: number[][] = [];
  for (let start = 0; start < order.length; start += size) out.push(order.slice(start, start + size));
  return out;
}
