/**
 * Longest common subsequence over token-id sequences, with bounded memory.
 *
 * - lcsLength: the LCS length with one row of min(m, n) + 1 cells (rougeL needs only the length).
 * - markLcsPositions: the positions in `ref` of the one LCS that rouge_score's `lcs_ind` returns. rougeLsum takes
 *   the union of these positions over candidate sentences, and different LCSs give different unions, so the
 *   choice has to be the reference's: it fills the full prefix table t[i][j] (LCS of ref[:i] and can[:j]) and walks
 *   back from (m, n) taking the diagonal on a token match, else going left when t[i][j-1] > t[i-1][j], else up
 *   (`_backtrack_norec`).
 *
 *   Hirschberg's split finds *an* LCS, not necessarily that one, so instead this replays the same walk over the
 *   same table values without holding the table: it keeps checkpoint rows, recomputes one band of rows at a time
 *   from its checkpoint and walks through the band bottom-up (recursively, if a band is itself too big). Every value
 *   the walk reads is the value the full table holds, so the path is identical. Each recursion level holds at most
 *   `budgetCells` cells of checkpoints (or two rows, when one row alone is larger than the budget) and the band being
 *   walked holds at most `budgetCells`; levels are few (two for 20,000 x 20,000 tokens, whose walk grows the peak RSS
 *   by about 30 MiB where the full table would be 1.6 GB). The cost is about three passes over the m x n cells
 *   instead of one. Inputs whose whole table fits in the budget (every sentence of a normal summary) take the
 *   direct path. (The choice of LCS matters: with the walk's tie-break flipped, test/unit/rouge.test.ts fails on
 *   rougeLsum of DialogSum fixture cases.)
 */

/** Default cell budget for one band of the table: 2^21 Int32 cells = 8 MiB. */
export const DEFAULT_BUDGET_CELLS = 1 << 21;

let scratch = new Int32Array(1024);

function scratchOf(cells: number): Int32Array {
  if (scratch.length < cells) scratch = new Int32Array(Math.max(cells, scratch.length * 2));
  return scratch;
}

/** Length of an LCS of `a` and `b`, in O(min(|a|, |b|)) memory. */
export function lcsLength(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const [outer, inner] = a.length >= b.length ? [a, b] : [b, a];
  const w = inner.length;
  if (w === 0) return 0;
  const row = scratchOf(w + 1);
  row.fill(0, 0, w + 1);
  for (let i = 0; i < outer.length; i++) {
    const tok = outer[i];
    let diag = 0; // row[j - 1] of the previous row
    for (let j = 1; j <= w; j++) {
      const up = row[j];
      if (tok === inner[j - 1]) row[j] = diag + 1;
      else if (row[j - 1] > up) row[j] = row[j - 1];
      diag = up;
    }
  }
  return row[w];
}

/**
 * Sets `mark[i] = 1` for every position i of `ref` on the LCS that rouge_score's `lcs_ind(ref, can)` returns.
 * `mark` must be at least ref.length long; positions not on the LCS are left as they are, so repeated calls
 * accumulate the union.
 */
export function markLcsPositions(
  ref: ArrayLike<number>,
  can: ArrayLike<number>,
  mark: Uint8Array,
  budgetCells: number = DEFAULT_BUDGET_CELLS,
): void {
  const m = ref.length;
  const n = can.length;
  if (m === 0 || n === 0) return;
  const budget = Math.max(budgetCells, 4);
  if ((m + 1) * (n + 1) <= budget) walkTable(ref, can, 0, m, null, n, mark);
  else walkBand(ref, can, 0, m, new Int32Array(n + 1), n, mark, budget);
}

/**
 * Walks rouge_score's backtrack path from cell (hi, j0) while it stays below row `lo` and right of column 0.
 * `boundary[0..j0]` holds t[lo][0..j0]. Returns the column at which the walk reaches row lo (0 if it ended).
 * Only columns 0..j0 are ever computed: t[i][j] depends on can[:j] only, so they equal the full table's.
 */
function walkBand(
  ref: ArrayLike<number>,
  can: ArrayLike<number>,
  lo: number,
  hi: number,
  boundary: Int32Array,
  j0: number,
  mark: Uint8Array,
  budget: number,
): number {
  const w = j0 + 1;
  const h = hi - lo;
  if ((h + 1) * w <= budget || h === 1) return walkTable(ref, can, lo, hi, boundary, j0, mark);

  // Too big: keep checkpoint rows lo, lo + bandH, lo + 2 bandH, ... and walk each band from the bottom one up.
  let bandH = Math.max(1, Math.floor(budget / w) - 1); // a band of bandH rows (+ its boundary) fits the budget
  let bands = Math.ceil(h / bandH);
  const maxCheckpoints = Math.max(2, Math.floor(budget / w));
  if (bands > maxCheckpoints) {
    // Not enough room to checkpoint at the band size: fewer, taller bands, each walked recursively.
    bands = maxCheckpoints;
    bandH = Math.ceil(h / bands);
    bands = Math.ceil(h / bandH);
  }
  const checkpoints: Int32Array[] = [boundary.subarray(0, w)];
  let prev = Int32Array.from(boundary.subarray(0, w));
  let cur = new Int32Array(w);
  const lastCheckpointRow = lo + (bands - 1) * bandH;
  for (let r = lo + 1; r <= lastCheckpointRow; r++) {
    fillRow(ref[r - 1], can, prev, cur, w);
    if ((r - lo) % bandH === 0) checkpoints.push(Int32Array.from(cur));
    [prev, cur] = [cur, prev];
  }
  let j = j0;
  for (let k = bands - 1; k >= 0 && j > 0; k--) {
    const bandLo = lo + k * bandH;
    const bandHi = Math.min(bandLo + bandH, hi);
    j = walkBand(ref, can, bandLo, bandHi, checkpoints[k], j, mark, budget);
  }
  return j;
}

/** cur[j] = t[r][j] from prev[j] = t[r-1][j], for the row whose ref token is `tok`. */
function fillRow(tok: number, can: ArrayLike<number>, prev: Int32Array, cur: Int32Array, w: number): void {
  cur[0] = 0;
  for (let j = 1; j < w; j++) {
    if (tok === can[j - 1]) cur[j] = prev[j - 1] + 1;
    else {
      const up = prev[j];
      const left = cur[j - 1];
      cur[j] = up > left ? up : left;
    }
  }
}

/**
 * The band lo..hi held whole (scratch table of (hi - lo + 1) x (j0 + 1)), then the reference's walk through it.
 * `boundary` is t[lo][0..j0], or null for row 0 (all zeros).
 */
function walkTable(
  ref: ArrayLike<number>,
  can: ArrayLike<number>,
  lo: number,
  hi: number,
  boundary: Int32Array | null,
  j0: number,
  mark: Uint8Array,
): number {
  const w = j0 + 1;
  const h = hi - lo;
  const t = scratchOf((h + 1) * w);
  if (boundary === null) t.fill(0, 0, w); // row 0 of the whole table
  else t.set(boundary.subarray(0, w), 0);
  for (let r = 1; r <= h; r++) {
    const tok = ref[lo + r - 1];
    const base = r * w;
    const prev = base - w;
    t[base] = 0;
    for (let j = 1; j < w; j++) {
      if (tok === can[j - 1]) t[base + j] = t[prev + j - 1] + 1;
      else {
        const up = t[prev + j];
        const left = t[base + j - 1];
        t[base + j] = up > left ? up : left;
      }
    }
  }
  // _backtrack_norec, from (h, j0) in band coordinates.
  let i = h;
  let j = j0;
  while (i > 0 && j > 0) {
    if (ref[lo + i - 1] === can[j - 1]) {
      mark[lo + i - 1] = 1;
      i--;
      j--;
    } else if (t[i * w + j - 1] > t[(i - 1) * w + j]) j--;
    else i--;
  }
  return j;
}
