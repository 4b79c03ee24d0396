/**
 * Sentence splitter for rougeLsum's `splitSummaries` option.
 *
 * rouge_score's split_summaries=True calls nltk.sent_tokenize: Punkt with NLTK's pretrained English parameters
 * (thousands of learned abbreviations, collocations and orthographic statistics). That model is data this project
 * does not ship, so this is NOT Punkt and is NOT guaranteed to split where nltk does. It is a small, documented rule
 * set that agrees with Punkt on ordinary prose:
 *
 * - A sentence ends after a run of '.', '?' or '!' (plus any closing quotes or brackets right after it) that is
 *   followed by whitespace. A newline alone does not end a sentence (nor does it for nltk).
 * - A single '.' does not end a sentence after a known abbreviation (ABBREVIATIONS: titles such as Mr/Mrs/Dr,
 *   month and a few common short forms), after dotted initialisms such as "U.S." or "a.m." , or after a single
 *   letter (an initial: "J. Smith").
 * - A single '.' after a number does not end a sentence when the next word starts in lower case ("No. 5. it").
 * - An ellipsis ("..", "...") ends a sentence only when the next word starts with an upper-case letter.
 *
 * Where it differs from Punkt: Punkt's learned abbreviation list is much longer; Punkt may still break after an
 * abbreviation when the next word is a frequent sentence starter ("... at 5 p.m. The next day"); Punkt uses
 * corpus statistics for initials and ellipses. Text that has no such cases splits the same.
 *
 * For exact parity with a reference pipeline, split sentences the way that pipeline did, join them with "\n",
 * and score without splitSummaries: rougeLsum then uses the lines exactly as rouge_score does.
 */

/** Lower-case forms, without the final period. */
export const ABBREVIATIONS: ReadonlySet<string> = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'mt', 'ft', 'vs', 'rev', 'gen', 'gov', 'sen', 'rep',
  'capt', 'col', 'lt', 'sgt', 'cpl', 'maj', 'adm', 'hon', 'messrs', 'mme', 'mlle',
  'inc', 'ltd', 'co', 'corp', 'bros', 'dept', 'univ', 'assn', 'ave', 'blvd', 'rd',
  'jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec',
  'mon', 'tue', 'tues', 'wed', 'thu', 'thur', 'thurs', 'fri', 'sat', 'sun',
  'no', 'nos', 'vol', 'vols', 'p', 'pp', 'fig', 'figs', 'approx', 'est', 'cf', 'al', 'viz',
]);

const DOTTED_INITIALISM = /^(?:[a-z]\.)+[a-z]$/i;

function isUpper(ch: string | undefined): boolean {
  return ch !== undefined && ch !== ch.toLowerCase() && ch === ch.toUpperCase();
}

function isLower(ch: string | undefined): boolean {
  return ch !== undefined && ch !== ch.toUpperCase() && ch === ch.toLowerCase();
}

/** Whether the punctuation `punct`, ending the word `word` and followed by `next`, ends a sentence. */
function endsSentence(word: string, punct: string, next: string): boolean {
  if (punct.includes('?') || punct.includes('!')) return true;
  if (punct.length > 1) return isUpper(next[0]); // ellipsis
  const bare = word.replace(/^[("'\[{\u2018\u201c]+/, '');
  if (bare.length === 0) return true;
  if (ABBREVIATIONS.has(bare.toLowerCase())) return false;
  if (DOTTED_INITIALISM.test(bare)) return false;
  if (bare.length === 1 && /[a-z]/i.test(bare)) return false;
  if (/^\d+$/.test(bare) && isLower(next[0])) return false;
  return true;
}

/** Splits `text` into sentences (see the module comment); whitespace between sentences is dropped. */
export function splitSentences(text: string): string[] {
  const sentences: string[] = [];
  // A word, then a run of sentence-final punctuation and closers, then whitespace, then the next character.
  const boundary = /(\S*?)([.?!]+)([\u0022\u0027\u0029\u005d\u007d\u2019\u201d]*)(\s+)(?=(\S+))/g;
  let start = 0;
  for (let m = boundary.exec(text); m !== null; m = boundary.exec(text)) {
    const [, word, punct, closers, space, next] = m;
    if (!endsSentence(word, punct, next)) continue;
    const end = m.index + word.length + punct.length + closers.length;
    const sentence = text.slice(start, end).trim();
    if (sentence.length > 0) sentences.push(sentence);
    start = end + space.length;
  }
  const rest = text.slice(start).trim();
  if (rest.length > 0) sentences.push(rest);
  return sentences;
}
