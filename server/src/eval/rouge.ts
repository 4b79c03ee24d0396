/**
 * ROUGE, numerically identical to Google's rouge_score 0.1.2 (`rouge_scorer.RougeScorer`), which Hugging Face
 * `evaluate`'s "rouge" metric wraps:
 *
 * - rougeN (rouge1 … rouge9): clipped n-gram overlap with counts; precision = overlap / max(#prediction n-grams, 1),
 *   recall = overlap / max(#target n-grams, 1).
 * - rougeL: LCS of the two token sequences; 0 when either is empty.
 * - rougeLsum: summary-level LCS (ROUGE paper section 3.2) over sentences: for each target sentence, the union of
 *   its LCS positions with every prediction sentence, with counts clipped so no token is counted twice (as
 *   ROUGE-1.5.5 does). Sentences are the text's "\n"-separated lines (empty lines dropped), as rouge_score does by
 *   default; `splitSummaries` splits with sentences.ts instead (see there for how that differs from nltk).
 * - fmeasure = 2 P R / (P + R), or 0.
 * - scoreMulti: every target scored against the prediction; per type, the score of the target with the highest
 *   fmeasure (the first on ties, as numpy.argmax).
 *
 * The arithmetic is the reference's, operation for operation, so results are bit-identical in practice; the tests
 * hold them to 1e-9 against rouge_score's own output.
 */
import { lcsLength, markLcsPositions } from './lcs';
import { splitSentences } from './sentences';
import { DefaultTokenizer } from './tokenize';

import type { Score } from '../../../protocol/run-folder';

export type { Score };

export type RougeNType = `rouge${1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9}`;
export type RougeType = RougeNType | 'rougeL' | 'rougeLsum';
export const DEFAULT_ROUGE_TYPES = ['rouge1', 'rouge2', 'rougeL', 'rougeLsum'] as const;
export type DefaultRougeType = (typeof DEFAULT_ROUGE_TYPES)[number];

export interface RougeOptions<T extends RougeType> {
  rougeTypes?: readonly T[];
  /** Porter-stem tokens longer than 3 characters (rouge_score's use_stemmer). Default false. */
  useStemmer?: boolean;
  /** For rougeLsum, split each text into sentences first (rouge_score's split_summaries). Default false. */
  splitSummaries?: boolean;
}

/** rouge_score's scoring.fmeasure. */
export function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

const ZERO: Score = Object.freeze({ precision: 0, recall: 0, fmeasure: 0 });

function score(overlap: number, predictionCount: number, targetCount: number): Score {
  const precision = overlap / predictionCount;
  const recall = overlap / targetCount;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** A text tokenized once: its sentences as token-id arrays, and all its tokens in order. */
interface Tokenized {
  sentences: Int32Array[];
  tokens: Int32Array;
}

/** Maps token strings to small dense ids, per scored pair, so the counting and the LCS work on integers. */
class Vocabulary {
  private readonly ids = new Map<string, number>();

  get size(): number {
    return this.ids.size;
  }

  encode(tokens: readonly string[]): Int32Array {
    const out = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      let id = this.ids.get(tokens[i]);
      if (id === undefined) {
        id = this.ids.size;
        this.ids.set(tokens[i], id);
      }
      out[i] = id;
    }
    return out;
  }
}

function concat(parts: readonly Int32Array[]): Int32Array {
  if (parts.length === 1) return parts[0];
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Int32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class RougeScorer<T extends RougeType = DefaultRougeType> {
  readonly rougeTypes: readonly T[];
  private readonly tokenizer: DefaultTokenizer;
  private readonly splitSummaries: boolean;
  private readonly ngramOrders: ReadonlyMap<T, number>;

  constructor(options: RougeOptions<T> = {}) {
    this.rougeTypes = options.rougeTypes ?? (DEFAULT_ROUGE_TYPES as unknown as readonly T[]);
    const orders = new Map<T, number>();
    for (const type of this.rougeTypes) {
      if (type === 'rougeL' || type === 'rougeLsum') continue;
      const match = /^rouge([1-9])$/.exec(type);
      if (match === null) throw new Error(`Invalid rouge type: ${type}`);
      orders.set(type, Number(match[1]));
    }
    this.ngramOrders = orders;
    this.tokenizer = new DefaultTokenizer(options.useStemmer ?? false);
    this.splitSummaries = options.splitSummaries ?? false;
  }

  /** rouge_score's RougeScorer.score(target, prediction). */
  score(target: string, prediction: string): Record<T, Score> {
    const vocab = new Vocabulary();
    return this.scoreTokenized(this.prepare(target, vocab), this.prepare(prediction, vocab), vocab.size);
  }

  /** rouge_score's RougeScorer.score_multi(targets, prediction): per type, the best target by fmeasure. */
  scoreMulti(targets: readonly string[], prediction: string): Record<T, Score> {
    if (targets.length === 0) throw new Error('scoreMulti needs at least one target');
    const vocab = new Vocabulary();
    const pred = this.prepare(prediction, vocab);
    const prepared = targets.map((t) => this.prepare(t, vocab));
    const all = prepared.map((t) => this.scoreTokenized(t, pred, vocab.size));
    const best = {} as Record<T, Score>;
    for (const type of this.rougeTypes) {
      let bestIndex = 0;
      for (let i = 1; i < all.length; i++) if (all[i][type].fmeasure > all[bestIndex][type].fmeasure) bestIndex = i;
      best[type] = all[bestIndex][type];
    }
    return best;
  }

  private prepare(text: string, vocab: Vocabulary): Tokenized {
    const pieces = this.splitSummaries ? splitSentences(text) : text.split('\n');
    const sentences: Int32Array[] = [];
    for (const piece of pieces) if (piece.length > 0) sentences.push(vocab.encode(this.tokenizer.tokenize(piece)));
    // Tokens never span a "\n", so the lines' tokens, concatenated, are the whole text's tokens. A sentence
    // splitter may cut elsewhere, so with splitSummaries the whole text is tokenized on its own.
    const tokens = this.splitSummaries
      ? vocab.encode(this.tokenizer.tokenize(text))
      : sentences.length === 0
        ? new Int32Array(0)
        : concat(sentences);
    return { sentences, tokens };
  }

  private scoreTokenized(target: Tokenized, prediction: Tokenized, vocabSize: number): Record<T, Score> {
    const result = {} as Record<T, Score>;
    for (const type of this.rougeTypes) {
      if (type === 'rougeL') result[type] = scoreLcs(target.tokens, prediction.tokens);
      else if (type === 'rougeLsum') result[type] = summaryLevelLcs(target.sentences, prediction.sentences, vocabSize);
      else result[type] = scoreNgrams(target.tokens, prediction.tokens, this.ngramOrders.get(type) ?? 1, vocabSize);
    }
    return result;
  }
}

/** _score_ngrams(_create_ngrams(target, n), _create_ngrams(prediction, n)). */
export function scoreNgrams(target: Int32Array, prediction: Int32Array, n: number, vocabSize: number): Score {
  const targetCount = Math.max(target.length - n + 1, 0);
  const predictionCount = Math.max(prediction.length - n + 1, 0);
  let overlap = 0;
  if (targetCount > 0 && predictionCount > 0) {
    if (n === 1) {
      const counts = new Int32Array(vocabSize);
      for (let i = 0; i < target.length; i++) counts[target[i]]++;
      for (let i = 0; i < prediction.length; i++) {
        if (counts[prediction[i]] > 0) {
          counts[prediction[i]]--;
          overlap++;
        }
      }
    } else {
      const counts = new Map<number | string, number>();
      for (let i = 0; i < targetCount; i++) {
        const key = ngramKey(target, i, n, vocabSize);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (let i = 0; i < predictionCount; i++) {
        const key = ngramKey(prediction, i, n, vocabSize);
        const left = counts.get(key);
        if (left !== undefined && left > 0) {
          counts.set(key, left - 1);
          overlap++;
        }
      }
    }
  }
  // sum(min(target[g], prediction[g])) counted by consuming the target's counts; integers, so exact.
  return score(overlap, Math.max(predictionCount, 1), Math.max(targetCount, 1));
}

function ngramKey(tokens: Int32Array, at: number, n: number, vocabSize: number): number | string {
  if (n === 2) return tokens[at] * vocabSize + tokens[at + 1]; // < 2^53 for any realistic vocabulary
  let key = String(tokens[at]);
  for (let k = 1; k < n; k++) key += ',' + tokens[at + k];
  return key;
}

/** _score_lcs: LCS length over prediction (precision) and target (recall) lengths. */
export function scoreLcs(target: Int32Array, prediction: Int32Array): Score {
  if (target.length === 0 || prediction.length === 0) return { ...ZERO };
  return score(lcsLength(target, prediction), prediction.length, target.length);
}

/** _summary_level_lcs(ref_sent, can_sent). */
export function summaryLevelLcs(refSents: readonly Int32Array[], canSents: readonly Int32Array[], vocabSize: number): Score {
  if (refSents.length === 0 || canSents.length === 0) return { ...ZERO };
  let m = 0;
  let n = 0;
  let longest = 0;
  for (const s of refSents) {
    m += s.length;
    longest = Math.max(longest, s.length);
  }
  for (const s of canSents) n += s.length;
  if (m === 0 || n === 0) return { ...ZERO };

  // Token counts, so that no token is counted as a hit more often than it occurs on either side.
  const countsRef = new Int32Array(vocabSize);
  const countsCan = new Int32Array(vocabSize);
  for (const s of refSents) for (let i = 0; i < s.length; i++) countsRef[s[i]]++;
  for (const s of canSents) for (let i = 0; i < s.length; i++) countsCan[s[i]]++;

  let hits = 0;
  const union = new Uint8Array(longest);
  for (const r of refSents) {
    union.fill(0, 0, r.length);
    for (const c of canSents) markLcsPositions(r, c, union);
    for (let i = 0; i < r.length; i++) {
      if (union[i] === 0) continue;
      const t = r[i];
      if (countsCan[t] > 0 && countsRef[t] > 0) {
        hits++;
        countsCan[t]--;
        countsRef[t]--;
      }
    }
  }
  return score(hits, n, m);
}
