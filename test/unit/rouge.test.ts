import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ROUGE_TYPES, RougeScorer, type Score } from '../../server/src/eval/rouge';
import { tokenize } from '../../server/src/eval/tokenize';
import { CachingPorterStemmer } from '../../server/src/eval/porter';

const FIXTURES = fileURLToPath(new URL('../fixtures/rouge/', import.meta.url));
const TOLERANCE = 1e-9;

interface ScoresFixture {
  versions: Record<string, string>;
  types: string[];
  texts: string[];
  cases: [kind: 'score' | 'score_multi', targets: number[], prediction: number, group: string][];
  expected: { stem: number[][]; nostem: number[][] };
}

const fixture = JSON.parse(readFileSync(FIXTURES + 'scores.json', 'utf8')) as ScoresFixture;

function flat(scores: Record<string, Score>): number[] {
  return DEFAULT_ROUGE_TYPES.flatMap((t) => [scores[t].precision, scores[t].recall, scores[t].fmeasure]);
}

test('fixture types are the default types, in order', () => {
  assert.deepEqual(fixture.types, [...DEFAULT_ROUGE_TYPES]);
  assert.equal(fixture.versions['rouge-score'], '0.1.2');
});

for (const mode of ['nostem', 'stem'] as const) {
  test(`rouge_score 0.1.2 parity on ${fixture.cases.length} DialogSum and edge cases (${mode})`, (t) => {
    const scorer = new RougeScorer({ useStemmer: mode === 'stem' });
    let maxDiff = 0;
    const groups = new Set<string>();
    fixture.cases.forEach(([kind, targets, prediction, group], i) => {
      groups.add(group);
      const pred = fixture.texts[prediction];
      const got = flat(
        kind === 'score'
          ? scorer.score(fixture.texts[targets[0]], pred)
          : scorer.scoreMulti(targets.map((t) => fixture.texts[t]), pred),
      );
      const want = fixture.expected[mode][i];
      for (let k = 0; k < want.length; k++) {
        const diff = Math.abs(got[k] - want[k]);
        maxDiff = Math.max(maxDiff, diff);
        if (!(diff <= TOLERANCE)) {
          assert.fail(`case ${i} (${group}) value ${k} (${DEFAULT_ROUGE_TYPES[Math.floor(k / 3)]}): got ${got[k]}, rouge_score ${want[k]}`);
        }
      }
    });
    // The scores must vary, or the comparison proves little.
    const f1 = new Set(fixture.expected[mode].map((row) => row[2]));
    assert.ok(f1.size > 500, `only ${f1.size} distinct rouge1 F values`);
    assert.ok(groups.has('multi-reference') && groups.has('newline-joined') && groups.has('cross-far'));
    t.diagnostic(`${mode}: max |difference| ${maxDiff} over ${fixture.cases.length * 12} values`);
  });
}

interface TinyCase {
  target: string;
  prediction: string;
  use_stemmer: boolean;
  tokens_target: string[];
  tokens_prediction: string[];
  scores: Record<string, [number, number, number]>;
}

test('tiny_expected_scores.json: tokens and scores', () => {
  const tiny = JSON.parse(readFileSync(FIXTURES + 'tiny_expected_scores.json', 'utf8')) as { cases: TinyCase[] };
  assert.ok(tiny.cases.length >= 10);
  for (const c of tiny.cases) {
    const stemmer = c.use_stemmer ? new CachingPorterStemmer() : null;
    assert.deepEqual(tokenize(c.target, stemmer), c.tokens_target, `tokens of ${JSON.stringify(c.target)}`);
    assert.deepEqual(tokenize(c.prediction, stemmer), c.tokens_prediction, `tokens of ${JSON.stringify(c.prediction)}`);
    const got = new RougeScorer({ useStemmer: c.use_stemmer }).score(c.target, c.prediction);
    for (const [type, [p, r, f]] of Object.entries(c.scores)) {
      const s = got[type as keyof typeof got];
      const where = `${type} of ${JSON.stringify(c.target)} vs ${JSON.stringify(c.prediction)} stem=${c.use_stemmer}`;
      assert.ok(Math.abs(s.precision - p) <= TOLERANCE, `${where}: precision ${s.precision} != ${p}`);
      assert.ok(Math.abs(s.recall - r) <= TOLERANCE, `${where}: recall ${s.recall} != ${r}`);
      assert.ok(Math.abs(s.fmeasure - f) <= TOLERANCE, `${where}: fmeasure ${s.fmeasure} != ${f}`);
    }
  }
});

function lines(name: string): string[] {
  return readFileSync(FIXTURES + 'testdata/' + name, 'utf8').split('\n');
}

/** [recall, precision, fmeasure] as the reference's own tests state them, to 5 decimals. */
function assertRpf(s: Score, [r, p, f]: [number, number, number], what: string): void {
  for (const [got, want, name] of [[s.recall, r, 'R'], [s.precision, p, 'P'], [s.fmeasure, f, 'F']] as const) {
    assert.ok(Math.abs(got - want) < 5e-6, `${what} ${name}: ${got} vs ${want}`);
  }
}

test('known values of the reference implementation on its testdata/', () => {
  const targets = lines('target.txt');
  const predictions = lines('prediction.txt');
  const plain = new RougeScorer({ rougeTypes: ['rouge1', 'rouge2'] });
  const stemmed = new RougeScorer({ rougeTypes: ['rouge1'], useStemmer: true });
  assertRpf(plain.score(targets[0], predictions[0]).rouge1, [0.40741, 0.6875, 0.51163], 'rouge1 line0');
  assertRpf(plain.score(targets[1], predictions[1]).rouge1, [0.40476, 0.65385, 0.5], 'rouge1 line1');
  assertRpf(stemmed.score(targets[1], predictions[1]).rouge1, [0.42857, 0.69231, 0.52941], 'rouge1 line1 stemmed');
  assertRpf(plain.score(targets[0], predictions[0]).rouge2, [0.30769, 0.53333, 0.39024], 'rouge2 line0');
  assertRpf(plain.score(targets[1], predictions[1]).rouge2, [0.29268, 0.48, 0.36364], 'rouge2 line1');
  const lsum = new RougeScorer({ rougeTypes: ['rougeLsum'], useStemmer: true });
  const target = readFileSync(FIXTURES + 'testdata/pyrouge_files/target_multi.0.txt', 'utf8');
  const prediction = readFileSync(FIXTURES + 'testdata/pyrouge_files/prediction_multi.0.txt', 'utf8');
  assertRpf(lsum.score(target, prediction).rougeLsum, [0.36538, 0.66667, 0.47205], 'rougeLsum multi.0 stemmed');
});

test('cases from the reference test suite', () => {
  const scorer = new RougeScorer({ rougeTypes: ['rouge1', 'rouge9', 'rougeL', 'rougeLsum'] });
  const same = scorer.score('testing one two', 'testing one two');
  for (const t of ['rouge1', 'rougeL', 'rougeLsum'] as const) assert.deepEqual(same[t], { precision: 1, recall: 1, fmeasure: 1 });
  assert.deepEqual(scorer.score('testing one two', '').rouge1, { precision: 0, recall: 0, fmeasure: 0 });
  const multi = new RougeScorer({ rougeTypes: ['rouge1'] }).scoreMulti(['first text', 'first something'], 'text first');
  assert.deepEqual(multi.rouge1, { precision: 1, recall: 1, fmeasure: 1 });
  const lsum = new RougeScorer({ rougeTypes: ['rougeLsum'] }).score('w1 w2 w3 w4 w5', 'w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5');
  assert.equal(lsum.rougeLsum.recall, 0.8);
  assert.equal(lsum.rougeLsum.precision, 0.4);
});

test('scoreMulti keeps the first target on an fmeasure tie, per type', () => {
  const scorer = new RougeScorer();
  const best = scorer.scoreMulti(['a b', 'b a', 'a b c d'], 'a b');
  assert.deepEqual(best.rouge1, { precision: 1, recall: 1, fmeasure: 1 });
  // rouge2: 'a b' matches exactly; 'b a' has no shared bigram: the first target wins.
  assert.deepEqual(best.rouge2, { precision: 1, recall: 1, fmeasure: 1 });
  assert.throws(() => scorer.scoreMulti([], 'a'), /at least one target/);
});

test('invalid rouge types are refused', () => {
  assert.throws(() => new RougeScorer({ rougeTypes: ['rougeX' as 'rouge1'] }), /Invalid rouge type/);
  assert.throws(() => new RougeScorer({ rougeTypes: ['rouge0' as 'rouge1'] }), /Invalid rouge type/);
});
