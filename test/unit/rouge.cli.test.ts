import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { rougeCommand } from '../../server/src/cli/rouge';
import { RougeScorer } from '../../server/src/eval/rouge';

const dir = mkdtempSync(join(tmpdir(), 'rouge-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, lines: readonly unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await rougeCommand(argv, {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
  });
  return { code, out, err };
}

const PAIRS = [
  { prediction: 'The cat sat on the mat.', references: ['A cat was sitting on the mat.', 'The cat sat.'] },
  { prediction: 'Running late again.\nHe apologized.', reference: 'He runs late and apologizes.' },
  { prediction: 'Nothing in common', references: ['totally different words'] },
];

test('--json prints per-example scores, the mean and the bootstrap, with rouge_score semantics', async () => {
  const input = file('pairs.jsonl', PAIRS);
  const { code, out, err } = await run(['--input', input, '--stemmer', '--json']);
  assert.equal(code, 0, err);
  const result = JSON.parse(out) as {
    per_example: Record<string, { precision: number; recall: number; fmeasure: number }>[];
    mean: Record<string, { fmeasure: number }>;
    bootstrap: Record<string, { low: { fmeasure: number }; mid: { fmeasure: number }; high: { fmeasure: number } }>;
  };
  assert.deepEqual(Object.keys(result), ['per_example', 'mean', 'bootstrap']);
  const scorer = new RougeScorer({ useStemmer: true });
  assert.deepEqual(result.per_example, [
    scorer.scoreMulti(PAIRS[0].references!, PAIRS[0].prediction),
    scorer.score(PAIRS[1].reference!, PAIRS[1].prediction),
    scorer.score(PAIRS[2].references![0], PAIRS[2].prediction),
  ]);
  for (const type of ['rouge1', 'rouge2', 'rougeL', 'rougeLsum']) {
    const fs = result.per_example.map((s) => s[type].fmeasure);
    assert.equal(result.mean[type].fmeasure, (fs[0] + fs[1] + fs[2]) / 3);
    const b = result.bootstrap[type];
    assert.ok(b.low.fmeasure <= b.mid.fmeasure && b.mid.fmeasure <= b.high.fmeasure);
  }
  assert.equal(result.per_example[2].rouge1.fmeasure, 0);
  // Seeded: the same command gives the same interval.
  assert.equal((await run(['--input', input, '--stemmer', '--json'])).out, out);
});

test('the table shows mean P/R/F per type and the interval', async () => {
  const { code, out } = await run(['-i', file('table.jsonl', PAIRS)]);
  assert.equal(code, 0);
  assert.match(out, /ROUGE over 3 pairs \(stemmer off, sentence split off/);
  for (const type of ['rouge1', 'rouge2', 'rougeL', 'rougeLsum']) {
    assert.match(out, new RegExp(`^${type} +\\d\\.\\d{4} +\\d\\.\\d{4} +\\d\\.\\d{4} +\\d\\.\\d{4} - \\d\\.\\d{4}$`, 'm'));
  }
});

test('--sentence-split changes only rougeLsum and says it is not Punkt', async () => {
  const input = file('split.jsonl', [{ prediction: 'Mr. Smith left. He came back.', reference: 'He came back. Mr. Smith left.' }]);
  const plain = JSON.parse((await run(['-i', input, '--json'])).out);
  const split = await run(['-i', input, '--json', '--sentence-split']);
  assert.match(split.err, /not nltk\.sent_tokenize/);
  const splitResult = JSON.parse(split.out);
  assert.deepEqual(splitResult.per_example[0].rouge1, plain.per_example[0].rouge1);
  assert.deepEqual(splitResult.per_example[0].rougeL, plain.per_example[0].rougeL);
  assert.ok(splitResult.per_example[0].rougeLsum.fmeasure > plain.per_example[0].rougeLsum.fmeasure);
  assert.equal(splitResult.per_example[0].rougeLsum.fmeasure, 1);
});

test('bad lines name the file, the line and the field; exit 2', async () => {
  const input = file('bad.jsonl', [
    PAIRS[0],
    '{"prediction": 3, "references": ["x"]}',
    '',
    '{"prediction": "p", "references": ["x", 7]}',
    'not json',
    '{"prediction": "p"}',
    '{"prediction": "p", "reference": "a", "references": ["b"]}',
    '[1, 2]',
    '{"prediction": "p", "references": []}',
  ]);
  const { code, out, err } = await run(['--input', input]);
  assert.equal(code, 2);
  assert.equal(out, '');
  const lines = err.trim().split('\n');
  assert.match(lines[0], /bad\.jsonl:2: field "prediction" must be a string, not a number$/);
  assert.match(lines[1], /bad\.jsonl:4: field "references\[1\]" must be a string, not a number$/);
  assert.match(lines[2], /bad\.jsonl:5: not valid JSON/);
  assert.match(lines[3], /bad\.jsonl:6: field "references" is missing/);
  assert.match(lines[4], /bad\.jsonl:7: give either "references" or "reference", not both/);
  assert.match(lines[5], /bad\.jsonl:8: expected a JSON object/);
  assert.match(lines[6], /bad\.jsonl:9: field "references" must not be empty/);
});

test('usage errors, missing files and empty inputs exit 2; --help exits 0', async () => {
  assert.equal((await run([])).code, 2);
  assert.match((await run([])).err, /--input is required/);
  assert.equal((await run(['--input', join(dir, 'nope.jsonl')])).code, 2);
  assert.match((await run(['--input', join(dir, 'nope.jsonl')])).err, /nope\.jsonl: cannot read \(ENOENT\)/);
  assert.equal((await run(['--input', file('empty.jsonl', [''])])).code, 2);
  assert.equal((await run(['--input', file('x.jsonl', PAIRS), '--bogus'])).code, 2);
  assert.equal((await run(['--input', file('y.jsonl', PAIRS), '--seed', '-1'])).code, 2);
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /Usage: qlora-studio rouge --input pairs\.jsonl/);
});
