/**
 * Porter stemmer: a faithful port of NLTK's `nltk.stem.porter.PorterStemmer` in its default mode,
 * `NLTK_EXTENSIONS` — the stemmer that rouge_score 0.1.2 (and so Hugging Face `evaluate`'s rouge) uses
 * when `use_stemmer=True`.
 *
 * Ported rule by rule from nltk/stem/porter.py (checked against NLTK 3.10.4; the NLTK_EXTENSIONS behaviour
 * has been stable for years). The NLTK deviations from Porter's 1980 paper are all here: the irregular-forms
 * table, 'ies'/'ied' on four-letter words, the two-letter `*o` case, 'y' -> 'i' only after a consonant that is
 * not the whole stem, 'alli' applied first and re-run through step 2, 'bli' -> 'ble', 'fulli' -> 'ful', and
 * 'logi' -> 'log' measured with the 'l' kept on the stem.
 *
 * test/unit/rouge.porter.test.ts checks it against NLTK's own output on every distinct word of DialogSum
 * (train + test) plus generated words that exercise every rule (test/fixtures/rouge/porter_words.txt).
 */

type Condition = ((stem: string) => boolean) | null;
/** [suffix, replacement, condition]; suffix '*d' means "ends with a double consonant" (step 1b). */
type Rule = readonly [string, string, Condition];

/** NLTK's table of irregular forms: surface form -> stem. */
const IRREGULAR: ReadonlyMap<string, string> = (() => {
  const forms: Record<string, readonly string[]> = {
    sky: ['sky', 'skies'],
    die: ['dying'],
    lie: ['lying'],
    tie: ['tying'],
    news: ['news'],
    inning: ['innings', 'inning'],
    outing: ['outings', 'outing'],
    canning: ['cannings', 'canning'],
    howe: ['howe'],
    proceed: ['proceed'],
    exceed: ['exceed'],
    succeed: ['succeed'],
  };
  const pool = new Map<string, string>();
  for (const [key, values] of Object.entries(forms)) for (const v of values) pool.set(v, key);
  return pool;
})();

function isVowel(ch: string): boolean {
  return ch === 'a' || ch === 'e' || ch === 'i' || ch === 'o' || ch === 'u';
}

/** A letter other than a, e, i, o, u, and other than a 'y' preceded by a consonant. */
function isConsonant(word: string, i: number): boolean {
  if (isVowel(word[i])) return false;
  if (word[i] === 'y') {
    // 'y' is a consonant iff the letter before it is not one: resolve a run of 'y's iteratively.
    let negate = false;
    while (i > 0 && word[i] === 'y') {
      negate = !negate;
      i--;
    }
    return !isVowel(word[i]) !== negate;
  }
  return true;
}

/** m in [C](VC){m}[V]: the number of vowel->consonant transitions, in one left-to-right pass. */
function measure(stem: string): number {
  let m = 0;
  let prevConsonant = true; // value irrelevant for i = 0: a transition needs a previous vowel
  for (let i = 0; i < stem.length; i++) {
    const ch = stem[i];
    const consonant: boolean = isVowel(ch) ? false : ch === 'y' ? (i === 0 ? true : !prevConsonant) : true;
    if (i > 0 && consonant && !prevConsonant) m++;
    prevConsonant = consonant;
  }
  return m;
}

function hasPositiveMeasure(stem: string): boolean {
  return measure(stem) > 0;
}

/** *v*: the stem contains a vowel. */
function containsVowel(stem: string): boolean {
  let prevConsonant = true;
  for (let i = 0; i < stem.length; i++) {
    const ch = stem[i];
    const consonant: boolean = isVowel(ch) ? false : ch === 'y' ? (i === 0 ? true : !prevConsonant) : true;
    if (!consonant) return true;
    prevConsonant = consonant;
  }
  return false;
}

/** *d: ends with a double consonant. */
function endsDoubleConsonant(word: string): boolean {
  const n = word.length;
  return n >= 2 && word[n - 1] === word[n - 2] && isConsonant(word, n - 1);
}

/** *o: ends consonant-vowel-consonant, the last not w, x or y; NLTK also accepts a two-letter vowel-consonant word. */
function endsCvc(word: string): boolean {
  const n = word.length;
  return (
    (n >= 3 &&
      isConsonant(word, n - 3) &&
      !isConsonant(word, n - 2) &&
      isConsonant(word, n - 1) &&
      word[n - 1] !== 'w' &&
      word[n - 1] !== 'x' &&
      word[n - 1] !== 'y') ||
    (n === 2 && !isConsonant(word, 0) && isConsonant(word, 1))
  );
}

function dropSuffix(word: string, suffix: string): string {
  return suffix === '' ? word : word.slice(0, word.length - suffix.length);
}

/** The first rule whose suffix matches decides: its replacement if the condition holds, else the word unchanged. */
function applyRuleList(word: string, rules: readonly Rule[]): string {
  for (const [suffix, replacement, condition] of rules) {
    if (suffix === '*d' && endsDoubleConsonant(word)) {
      const stem = word.slice(0, word.length - 2);
      return condition === null || condition(stem) ? stem + replacement : word;
    }
    if (word.endsWith(suffix)) {
      const stem = dropSuffix(word, suffix);
      return condition === null || condition(stem) ? stem + replacement : word;
    }
  }
  return word;
}

const STEP1A_RULES: readonly Rule[] = [
  ['sses', 'ss', null],
  ['ies', 'i', null],
  ['ss', 'ss', null],
  ['s', '', null],
];

function step1a(word: string): string {
  // NLTK: 'flies' -> 'fli' but 'dies' -> 'die'.
  if (word.endsWith('ies') && word.length === 4) return dropSuffix(word, 'ies') + 'ie';
  return applyRuleList(word, STEP1A_RULES);
}

function step1b(word: string): string {
  // NLTK: 'spied' -> 'spi' but 'died' -> 'die'.
  if (word.endsWith('ied')) return dropSuffix(word, 'ied') + (word.length === 4 ? 'ie' : 'i');
  if (word.endsWith('eed')) {
    const stem = dropSuffix(word, 'eed');
    return measure(stem) > 0 ? stem + 'ee' : word;
  }
  let intermediate: string | null = null;
  for (const suffix of ['ed', 'ing']) {
    if (word.endsWith(suffix)) {
      const candidate = dropSuffix(word, suffix);
      if (containsVowel(candidate)) {
        intermediate = candidate;
        break;
      }
    }
  }
  if (intermediate === null) return word;
  const last = intermediate[intermediate.length - 1];
  return applyRuleList(intermediate, [
    ['at', 'ate', null],
    ['bl', 'ble', null],
    ['iz', 'ize', null],
    ['*d', last, () => last !== 'l' && last !== 's' && last !== 'z'],
    ['', 'e', (stem) => measure(stem) === 1 && endsCvc(stem)],
  ]);
}

function step1c(word: string): string {
  // NLTK: y -> i only after a consonant that is not the whole stem ('happy' -> 'happi', 'enjoy', 'by' kept).
  return applyRuleList(word, [['y', 'i', (stem) => stem.length > 1 && isConsonant(stem, stem.length - 1)]]);
}

const STEP2_RULES: readonly Rule[] = [
  ['ational', 'ate', hasPositiveMeasure],
  ['tional', 'tion', hasPositiveMeasure],
  ['enci', 'ence', hasPositiveMeasure],
  ['anci', 'ance', hasPositiveMeasure],
  ['izer', 'ize', hasPositiveMeasure],
  ['bli', 'ble', hasPositiveMeasure], // NLTK and Martin's versions: 'bli', not the paper's 'abli'
  ['alli', 'al', hasPositiveMeasure],
  ['entli', 'ent', hasPositiveMeasure],
  ['eli', 'e', hasPositiveMeasure],
  ['ousli', 'ous', hasPositiveMeasure],
  ['ization', 'ize', hasPositiveMeasure],
  ['ation', 'ate', hasPositiveMeasure],
  ['ator', 'ate', hasPositiveMeasure],
  ['alism', 'al', hasPositiveMeasure],
  ['iveness', 'ive', hasPositiveMeasure],
  ['fulness', 'ful', hasPositiveMeasure],
  ['ousness', 'ous', hasPositiveMeasure],
  ['aliti', 'al', hasPositiveMeasure],
  ['iviti', 'ive', hasPositiveMeasure],
  ['biliti', 'ble', hasPositiveMeasure],
  ['fulli', 'ful', hasPositiveMeasure], // NLTK extension
];

function step2(word: string): string {
  // NLTK: apply 'alli' -> 'al' first and, if it fires, run the result through step 2 again.
  if (word.endsWith('alli') && hasPositiveMeasure(dropSuffix(word, 'alli'))) {
    return step2(dropSuffix(word, 'alli') + 'al');
  }
  // NLTK: the 'l' of 'logi' stays with the stem for the measure ('geo', 'theo' work like 'archaeo').
  const logi: Rule = ['logi', 'log', () => hasPositiveMeasure(word.slice(0, word.length - 3))];
  return applyRuleList(word, [...STEP2_RULES, logi]);
}

const STEP3_RULES: readonly Rule[] = [
  ['icate', 'ic', hasPositiveMeasure],
  ['ative', '', hasPositiveMeasure],
  ['alize', 'al', hasPositiveMeasure],
  ['iciti', 'ic', hasPositiveMeasure],
  ['ical', 'ic', hasPositiveMeasure],
  ['ful', '', hasPositiveMeasure],
  ['ness', '', hasPositiveMeasure],
];

const measureGt1 = (stem: string): boolean => measure(stem) > 1;

const STEP4_RULES: readonly Rule[] = [
  ['al', '', measureGt1],
  ['ance', '', measureGt1],
  ['ence', '', measureGt1],
  ['er', '', measureGt1],
  ['ic', '', measureGt1],
  ['able', '', measureGt1],
  ['ible', '', measureGt1],
  ['ant', '', measureGt1],
  ['ement', '', measureGt1],
  ['ment', '', measureGt1],
  ['ent', '', measureGt1],
  ['ion', '', (stem) => measure(stem) > 1 && (stem.endsWith('s') || stem.endsWith('t'))],
  ['ou', '', measureGt1],
  ['ism', '', measureGt1],
  ['ate', '', measureGt1],
  ['iti', '', measureGt1],
  ['ous', '', measureGt1],
  ['ive', '', measureGt1],
  ['ize', '', measureGt1],
];

function step5a(word: string): string {
  // Both E rules are tried (so not through applyRuleList).
  if (word.endsWith('e')) {
    const stem = dropSuffix(word, 'e');
    const m = measure(stem);
    if (m > 1) return stem;
    if (m === 1 && !endsCvc(stem)) return stem;
  }
  return word;
}

function step5b(word: string): string {
  return applyRuleList(word, [['ll', 'l', () => measure(word.slice(0, word.length - 1)) > 1]]);
}

/** NLTK's `PorterStemmer().stem(word)` (mode NLTK_EXTENSIONS, to_lowercase=True). */
export function porterStem(word: string): string {
  const lower = word.toLowerCase();
  const irregular = IRREGULAR.get(lower);
  if (irregular !== undefined) return irregular;
  // NLTK checks the length of the word as given, before lowercasing.
  if (word.length <= 2) return lower;
  let stem = step1a(lower);
  stem = step1b(stem);
  stem = step1c(stem);
  stem = step2(stem);
  stem = applyRuleList(stem, STEP3_RULES);
  stem = applyRuleList(stem, STEP4_RULES);
  stem = step5a(stem);
  return step5b(stem);
}

/** porterStem with a bounded memo: ROUGE stems the same few thousand words over and over. */
export class CachingPorterStemmer {
  private readonly cache = new Map<string, string>();

  constructor(private readonly maxEntries = 200_000) {}

  stem(word: string): string {
    let stem = this.cache.get(word);
    if (stem === undefined) {
      stem = porterStem(word);
      if (this.cache.size >= this.maxEntries) this.cache.clear();
      this.cache.set(word, stem);
    }
    return stem;
  }
}
