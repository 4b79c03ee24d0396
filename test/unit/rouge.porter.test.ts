import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CachingPorterStemmer, porterStem } from '../../server/src/eval/porter';

const WORDS = fileURLToPath(new URL('../fixtures/rouge/porter_words.txt', import.meta.url));

test("porterStem equals nltk's PorterStemmer on every DialogSum word and the generated rule words", (t) => {
  let checked = 0;
  let changed = 0;
  const mismatches: string[] = [];
  for (const line of readFileSync(WORDS, 'utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [word, stem = word] = line.split(' ');
    const got = porterStem(word);
    if (got !== stem) mismatches.push(`${word}: got ${got}, nltk ${stem}`);
    checked++;
    if (stem !== word) changed++;
  }
  assert.deepEqual(mismatches.slice(0, 20), []);
  assert.ok(checked > 20000 && changed > 10000, `${checked} words, ${changed} stemmed`);
  t.diagnostic(`${checked} words (${changed} changed by stemming), 0 mismatches`);
});

test('Porter paper examples and NLTK extensions', () => {
  const cases: Record<string, string> = {
    caresses: 'caress', ponies: 'poni', ties: 'tie', caress: 'caress', cats: 'cat', feed: 'feed', agreed: 'agre',
    plastered: 'plaster', bled: 'bled', motoring: 'motor', sing: 'sing', conflated: 'conflat', troubled: 'troubl',
    sized: 'size', hopping: 'hop', falling: 'fall', hissing: 'hiss', filing: 'file', happy: 'happi', sky: 'sky',
    relational: 'relat', generalization: 'gener', dying: 'die', skies: 'sky', spied: 'spi', died: 'die',
    enjoy: 'enjoy', geology: 'geolog', radically: 'radic', controll: 'control', by: 'by', AB: 'ab',
  };
  for (const [word, stem] of Object.entries(cases)) assert.equal(porterStem(word), stem, word);
});

test('long runs of y stay linear (no recursion limit)', () => {
  // nltk 3.10.4 gives 'y' * 99999 + 'i' (step 1c: the last 'y' follows a consonant 'y'); its older recursive
  // version raised RecursionError on such a word.
  const word = 'y'.repeat(100_000);
  const started = performance.now();
  const stem = porterStem(word);
  assert.ok(stem === 'y'.repeat(99_999) + 'i', `stem of length ${stem.length} ends ${stem.slice(-3)}`);
  assert.ok(performance.now() - started < 1000);
});

test('CachingPorterStemmer returns the same stems and stays bounded', () => {
  const stemmer = new CachingPorterStemmer(3);
  for (const w of ['running', 'jumps', 'happily', 'running', 'cats', 'dogs']) assert.equal(stemmer.stem(w), porterStem(w));
});
