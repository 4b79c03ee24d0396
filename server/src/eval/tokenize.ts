/**
 * rouge_score 0.1.2's default tokenizer (rouge_score/tokenize.py, wrapped by tokenizers.DefaultTokenizer):
 *
 *   text = text.lower()
 *   text = re.sub(r"[^a-z0-9]+", " ", text)
 *   tokens = re.split(r"\s+", text)
 *   if stemmer: tokens = [stemmer.stem(x) if len(x) > 3 else x for x in tokens]
 *   tokens = [x for x in tokens if re.match(r"^[a-z0-9]+$", x)]
 *
 * After the substitution the text holds only [a-z0-9] and spaces, so the tokens are exactly the maximal runs of
 * [a-z0-9] in the lowercased text; that is what this does. Python's str.lower and JavaScript's toLowerCase both
 * apply Unicode's full lowercase mapping; the only non-ASCII letters that map into [a-z] ('İ' -> 'i' + U+0307,
 * the Kelvin sign -> 'k') map the same way in both. Everything else outside [a-z0-9] (accents, CJK, '#', '-')
 * separates tokens, as in the reference.
 *
 * Tokenization is local to each run of characters, so tokenizing newline-separated lines one at a time and
 * concatenating gives the tokens of the whole text; rouge.ts relies on that.
 */
import { CachingPorterStemmer } from './porter';

const TOKEN_RE = /[a-z0-9]+/g;

export interface Stemmer {
  stem(word: string): string;
}

/** Tokens of `text` as rouge_score's DefaultTokenizer gives them; Porter-stems tokens longer than 3 characters. */
export function tokenize(text: string, stemmer: Stemmer | null): string[] {
  const tokens = text.toLowerCase().match(TOKEN_RE);
  if (tokens === null) return [];
  if (stemmer !== null) {
    let kept = 0;
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i].length > 3 ? stemmer.stem(tokens[i]) : tokens[i];
      // The reference drops any token that is not [a-z0-9]+ after stemming; a stem of [a-z0-9] input never
      // leaves that set, and is never empty, but keep the check rather than assume it.
      if (token.length > 0) tokens[kept++] = token;
    }
    tokens.length = kept;
  }
  return tokens;
}

/** rouge_score's DefaultTokenizer(use_stemmer): one stemmer (memoized) per tokenizer. */
export class DefaultTokenizer {
  private readonly stemmer: Stemmer | null;

  constructor(useStemmer = false) {
    this.stemmer = useStemmer ? new CachingPorterStemmer() : null;
  }

  tokenize(text: string): string[] {
    return tokenize(text, this.stemmer);
  }
}
