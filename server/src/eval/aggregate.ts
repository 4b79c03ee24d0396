/**
 * Aggregating per-example ROUGE scores: the plain mean, and a bootstrap confidence interval like rouge_score's
 * scoring.BootstrapAggregator (what `evaluate`'s rouge reports with use_aggregator=True: the `mid` fmeasure).
 *
 * The bootstrap follows the reference step for step: per score type (in the order the types were added), for each of
 * n_samples resamples draw n indices uniformly with replacement, take the mean of precision, recall and fmeasure over
 * the resample (a sequential sum divided by n, which is what numpy's mean over axis 0 computes), then take the
 * (1 - confidence) / 2, 50 and (1 + confidence) / 2 percentiles of those means with numpy's default "linear"
 * method, including its interpolation formula. `mid` is the median of the bootstrap means, not the plain mean.
 *
 * The one deliberate difference: rouge_score draws from numpy's global, unseeded generator, so its intervals change
 * from run to run and cannot be reproduced. Here the draws come from xoshiro128** seeded through splitmix32
 * (`seed`, default 0), so a run is reproducible; with the same indices the result is bit-identical to numpy's
 * (test/fixtures/rouge/generate.py ports the generator and checks this), but it is not the same sample as any
 * numpy run. Expect `low`/`mid`/`high` to differ from one `evaluate` run by the bootstrap's own noise.
 */
import type { Score } from './rouge';

export interface AggregateScore {
  low: Score;
  mid: Score;
  high: Score;
}

export interface BootstrapOptions {
  /** Width of the interval, in [0, 1]. Default 0.95. */
  confidenceInterval?: number;
  /** Resamples. Default 1000. */
  nSamples?: number;
  /** Seed of the resampling generator (an unsigned 32-bit integer). Default 0. */
  seed?: number;
}

/** xoshiro128** (Blackman & Vigna), its 128-bit state filled by splitmix32 from one 32-bit seed. */
export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed >>> 0;
    const splitmix32 = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32();
    this.s1 = splitmix32();
    this.s2 = splitmix32();
    this.s3 = splitmix32();
  }

  /** The next unsigned 32-bit output. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform integer in [0, n), n <= 2^32, without modulo bias (rejection sampling). */
  nextBelow(n: number): number {
    const limit = 0x100000000 - (0x100000000 % n);
    let r = this.nextUint32();
    while (r >= limit) r = this.nextUint32();
    return r % n;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Mean precision, recall and fmeasure per type (a sequential sum divided by the count). */
export function meanScores<T extends string>(perExample: readonly Record<T, Score>[]): Record<T, Score> {
  const result = {} as Record<T, Score>;
  if (perExample.length === 0) return result;
  for (const type of Object.keys(perExample[0]) as T[]) {
    let p = 0;
    let r = 0;
    let f = 0;
    for (const scores of perExample) {
      p += scores[type].precision;
      r += scores[type].recall;
      f += scores[type].fmeasure;
    }
    const n = perExample.length;
    result[type] = { precision: p / n, recall: r / n, fmeasure: f / n };
  }
  return result;
}

/** numpy.percentile(values, q) with method="linear"; `sorted` ascending, q in [0, 100]. */
export function percentileLinear(sorted: Float64Array | readonly number[], q: number): number {
  const n = sorted.length;
  const virtualIndex = (n - 1) * (q / 100);
  let prev = Math.floor(virtualIndex);
  let next = prev + 1;
  if (virtualIndex >= n - 1) prev = next = n - 1;
  if (virtualIndex < 0) prev = next = 0;
  const gamma = virtualIndex - Math.floor(virtualIndex);
  const a = sorted[prev];
  const b = sorted[next];
  const diff = b - a;
  // numpy's _lerp: a + diff * t, computed from the upper end when t >= 0.5.
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/**
 * Bootstrap low/mid/high of the mean per type, as scoring.BootstrapAggregator.aggregate() computes them.
 * `draw(n)` returns a uniform index in [0, n); by default a Xoshiro128 seeded with options.seed.
 */
export function bootstrapAggregate<T extends string>(
  perExample: readonly Record<T, Score>[],
  options: BootstrapOptions = {},
  draw?: (n: number) => number,
): Record<T, AggregateScore> {
  const confidence = options.confidenceInterval ?? 0.95;
  const nSamples = options.nSamples ?? 1000;
  if (!(confidence >= 0 && confidence <= 1)) throw new RangeError('confidenceInterval must be in range [0, 1]');
  if (!(Number.isInteger(nSamples) && nSamples > 0)) throw new RangeError('nSamples must be a positive integer');
  let next = draw;
  if (next === undefined) {
    const rng = new Xoshiro128(options.seed ?? 0);
    next = (bound: number) => rng.nextBelow(bound);
  }

  const result = {} as Record<T, AggregateScore>;
  const n = perExample.length;
  if (n === 0) return result;
  const delta = (1 - confidence) / 2;
  const qs = [100 * delta, 100 * 0.5, 100 * (1 - delta)];
  for (const type of Object.keys(perExample[0]) as T[]) {
    const columns = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    perExample.forEach((scores, i) => {
      columns[0][i] = scores[type].precision;
      columns[1][i] = scores[type].recall;
      columns[2][i] = scores[type].fmeasure;
    });
    const means = [new Float64Array(nSamples), new Float64Array(nSamples), new Float64Array(nSamples)];
    for (let s = 0; s < nSamples; s++) {
      let p = 0;
      let r = 0;
      let f = 0;
      for (let k = 0; k < n; k++) {
        const i = next(n);
        p += columns[0][i];
        r += columns[1][i];
        f += columns[2][i];
      }
      means[0][s] = p / n;
      means[1][s] = r / n;
      means[2][s] = f / n;
    }
    for (const m of means) m.sort();
    const at = (q: number): Score => ({
      precision: percentileLinear(means[0], q),
      recall: percentileLinear(means[1], q),
      fmeasure: percentileLinear(means[2], q),
    });
    result[type] = { low: at(qs[0]), mid: at(qs[1]), high: at(qs[2]) };
  }
  return result;
}

/** scoring.BootstrapAggregator's interface: add per-example score dicts, then aggregate. */
export class BootstrapAggregator<T extends string> {
  private readonly scores: Record<T, Score>[] = [];

  constructor(private readonly options: BootstrapOptions = {}) {}

  addScores(scores: Record<T, Score>): void {
    this.scores.push(scores);
  }

  aggregate(): Record<T, AggregateScore> {
    return bootstrapAggregate(this.scores, this.options);
  }
}
