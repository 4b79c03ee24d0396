/**
 * rouge_score 0.1.2's LCS code, ported line for line with its full quadratic table (rouge_scorer.py: _lcs_table,
 * _backtrack_norec, _summary_level_lcs). Tests use it as an independent reference for inputs too large or too
 * random for the Python fixtures; it is deliberately naive.
 */
export function referenceLcsInd<T>(ref: readonly T[], can: readonly T[]): number[] {
  const rows = ref.length;
  const cols = can.length;
  const t = Array.from({ length: rows + 1 }, () => new Array<number>(cols + 1).fill(0));
  for (let i = 1; i <= rows; i++) {
    for (let j = 1; j <= cols; j++) {
      t[i][j] = ref[i - 1] === can[j - 1] ? t[i - 1][j - 1] + 1 : Math.max(t[i - 1][j], t[i][j - 1]);
    }
  }
  let i = rows;
  let j = cols;
  const lcs: number[] = [];
  while (i > 0 && j > 0) {
    if (ref[i - 1] === can[j - 1]) {
      lcs.unshift(i - 1);
      i--;
      j--;
    } else if (t[i][j - 1] > t[i - 1][j]) j--;
    else i--;
  }
  return lcs;
}

/** _summary_level_lcs(ref_sent, can_sent) -> [precision, recall]. */
export function referenceSummaryLevelLcs(refSent: readonly string[][], canSent: readonly string[][]): [number, number] {
  const m = refSent.reduce((a, s) => a + s.length, 0);
  const n = canSent.reduce((a, s) => a + s.length, 0);
  if (refSent.length === 0 || canSent.length === 0 || m === 0 || n === 0) return [0, 0];
  const cntR = new Map<string, number>();
  const cntC = new Map<string, number>();
  for (const s of refSent) for (const t of s) cntR.set(t, (cntR.get(t) ?? 0) + 1);
  for (const s of canSent) for (const t of s) cntC.set(t, (cntC.get(t) ?? 0) + 1);
  let hits = 0;
  for (const r of refSent) {
    const union = new Set<number>();
    for (const c of canSent) for (const i of referenceLcsInd(r, c)) union.add(i);
    for (const i of [...union].sort((a, b) => a - b)) {
      const t = r[i];
      if ((cntC.get(t) ?? 0) > 0 && (cntR.get(t) ?? 0) > 0) {
        hits++;
        cntC.set(t, cntC.get(t)! - 1);
        cntR.set(t, cntR.get(t)! - 1);
      }
    }
  }
  return [hits / n, hits / m];
}
