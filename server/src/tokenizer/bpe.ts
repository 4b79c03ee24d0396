/**
 * An exact, fast byte-level BPE tokenizer built from a Hugging Face tokenizer.json (GPT-2 family: Phi, GPT-2,
 * GPT-NeoX, Falcon, Llama 3, Qwen2). It reproduces the Rust `tokenizers` pipeline step by step:
 * added tokens split first (leftmost-longest, non-normalized ones before normalized ones), then the
 * pre-tokenizer's regex (Oniguruma `\s` is Unicode White_Space, so the pattern is translated), then BPE merges
 * by rank on byte symbols, lowest rank first and leftmost on ties. Pieces are cached, so a 12 MB dataset costs
 * little more than its regex scan. `fromTokenizerJson` returns null for any pipeline it does not cover exactly;
 * the loader then falls back to @huggingface/transformers. Parity with Python is tested in
 * test/unit/lint-tokenizer.test.ts.
 */
import { AsciiPieces } from './ascii';


export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
  single_word: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedToken[];
  normalizer?: { type: string } | null;
  pre_tokenizer?: PreTokenizerJson | null;
  post_processor?: { type: string; single?: unknown[] } | null;
  model?: {
    type?: string;
    vocab?: Record<string, number>;
    merges?: (string | [string, string])[];
    dropout?: number | null;
    continuing_subword_prefix?: string | null;
    end_of_word_suffix?: string | null;
    byte_fallback?: boolean;
    ignore_merges?: boolean;
  };
}
interface PreTokenizerJson {
  type: string;
  add_prefix_space?: boolean;
  use_regex?: boolean;
  pattern?: { Regex?: string; String?: string };
  behavior?: string;
  invert?: boolean;
  pretokenizers?: PreTokenizerJson[];
}

/** GPT-2's pre-tokenizer pattern, as the Rust ByteLevel pre-tokenizer uses it. */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** bytes_to_unicode of GPT-2: the printable stand-in character of each byte. */
function byteChars(): string[] {
  const chars: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return chars;
}

/**
 * Oniguruma (Rust tokenizers) regex source to a JS `u` regex source: `\s`/`\S` become Unicode White_Space
 * (JS's `\s` also matches U+FEFF and misses U+0085), `(?i:…)` groups of literals become case classes.
 * Returns null for constructs whose meaning could differ.
 */
export function translatePattern(source: string): string | null {
  if (/\(\?[a-hj-z-]|\+\+|\*\+|\?\+|\\[AzZGhHRXKk]/.test(source)) return null;
  let out = '';
  let inClass = 0;
  let caseFold = -1; // paren depth at which a (?i: group closes
  let depth = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      i++;
      if (next === 's') out += inClass ? '\\p{White_Space}' : '\\p{White_Space}';
      else if (next === 'S') {
        if (inClass) return null;
        out += '\\P{White_Space}';
      } else if (next === 'p' || next === 'P') {
        const close = source.indexOf('}', i);
        if (close < 0) return null;
        out += source.slice(i - 1, close + 1);
        i = close;
      } else out += c + next;
      continue;
    }
    if (inClass) {
      if (c === '[') return null;
      if (c === ']') inClass = 0;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = 1;
      out += c;
      if (source[i + 1] === '^') {
        out += '^';
        i++;
      }
      continue;
    }
    if (source.startsWith('(?i:', i)) {
      if (caseFold >= 0) return null;
      depth++;
      caseFold = depth;
      out += '(?:';
      i += 3;
      continue;
    }
    if (c === '(') depth++;
    if (c === ')') {
      if (depth === caseFold) caseFold = -1;
      depth--;
    }
    if (caseFold >= 0 && /[a-zA-Z]/.test(c)) out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
    else out += c;
  }
  try {
    new RegExp(out, 'gu');
  } catch {
    return null;
  }
  return out;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** One pass of added-token matching: a regex whose alternatives are longest first (= leftmost-longest). */
function addedTokenMatcher(tokens: AddedToken[]): RegExp | null {
  if (tokens.length === 0) return null;
  const sorted = [...tokens].sort((a, b) => b.content.length - a.content.length);
  const alternatives = sorted.map((t) => {
    let alt = escapeRegex(t.content);
    if (t.lstrip) alt = `\\p{White_Space}*${alt}`;
    if (t.rstrip) alt = `${alt}\\p{White_Space}*`;
    return alt;
  });
  return new RegExp(alternatives.join('|'), 'gu');
}

const CACHE_LIMIT = 400_000;
const NON_ASCII = /[^\x00-\x7f]/;

export class ByteLevelBpe {
  readonly kind = 'byte-level-bpe';
  private readonly cache = new Map<string, number[]>();
  private readonly byteIds: Int32Array;
  private readonly pieceRegex: RegExp;
  private readonly specialMatcher: RegExp | null;
  private readonly normalMatcher: RegExp | null;
  private readonly addedIds: Map<string, number>;
  private readonly idToToken: string[];
  private readonly byteOf = new Map<string, number>();
  /** The hand-written GPT-2 pre-tokenizer for ASCII text (null for other patterns). */
  private readonly ascii: AsciiPieces | null;

  private constructor(
    private readonly vocab: Map<string, number>,
    /** (left id * stride + right id) -> rank * 2^21 + merged id */
    private readonly merges: Map<number, number>,
    private readonly stride: number,
    pattern: string,
    private readonly addPrefixSpace: boolean,
    private readonly ignoreMerges: boolean,
    added: AddedToken[],
    private readonly normalize: ((text: string) => string) | null,
    gpt2Pattern: boolean,
  ) {
    const chars = byteChars();
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      this.byteIds[b] = vocab.get(chars[b]!) ?? -1;
      this.byteOf.set(chars[b]!, b);
    }
    this.pieceRegex = new RegExp(pattern, 'gu');
    this.ascii = gpt2Pattern ? new AsciiPieces((piece) => this.bpe(piece)) : null;
    this.specialMatcher = addedTokenMatcher(added.filter((t) => !t.normalized));
    this.normalMatcher = addedTokenMatcher(added.filter((t) => t.normalized));
    this.addedIds = new Map();
    for (const t of added) this.addedIds.set(t.content, t.id);
    this.idToToken = [];
    for (const [token, id] of vocab) this.idToToken[id] = token;
    for (const t of added) this.idToToken[t.id] = t.content;
  }

  /** Null when this tokenizer.json is outside the pipelines reproduced exactly here. */
  static fromTokenizerJson(json: TokenizerJson): ByteLevelBpe | null {
    const model = json.model;
    if (!model || model.type !== 'BPE' || !model.vocab || !model.merges) return null;
    if (model.dropout || model.byte_fallback || model.continuing_subword_prefix || model.end_of_word_suffix) return null;
    let normalize: ((text: string) => string) | null = null;
    if (json.normalizer) {
      if (json.normalizer.type === 'NFC') normalize = (t) => t.normalize('NFC');
      else return null;
    }
    const pre = json.pre_tokenizer;
    let pattern: string | null;
    let addPrefixSpace = false;
    if (pre?.type === 'ByteLevel' && pre.use_regex !== false) {
      pattern = translatePattern(GPT2_PATTERN);
      addPrefixSpace = pre.add_prefix_space === true;
    } else if (pre?.type === 'Sequence' && pre.pretokenizers?.length === 2) {
      const [split, byteLevel] = pre.pretokenizers as [PreTokenizerJson, PreTokenizerJson];
      if (split.type !== 'Split' || split.behavior !== 'Isolated' || split.invert || !split.pattern?.Regex) return null;
      if (byteLevel.type !== 'ByteLevel' || byteLevel.use_regex !== false) return null;
      pattern = translatePattern(split.pattern.Regex);
      addPrefixSpace = byteLevel.add_prefix_space === true;
    } else return null;
    if (pattern === null) return null;
    const added = json.added_tokens ?? [];
    if (added.some((t) => t.single_word)) return null;

    const vocab = new Map<string, number>(Object.entries(model.vocab));
    let maxId = 0;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    for (const t of added) maxId = Math.max(maxId, t.id);
    const stride = maxId + 1;
    const merges = new Map<number, number>();
    for (let rank = 0; rank < model.merges.length; rank++) {
      const m = model.merges[rank]!;
      let left: string;
      let right: string;
      if (typeof m === 'string') {
        const space = m.indexOf(' ', 1);
        left = m.slice(0, space);
        right = m.slice(space + 1);
      } else [left, right] = m;
      const a = vocab.get(left);
      const b = vocab.get(right);
      const merged = vocab.get(left + right);
      if (a === undefined || b === undefined || merged === undefined) return null;
      const key = a * stride + b;
      if (!merges.has(key)) merges.set(key, rank * 2 ** 21 + merged);
    }
    if (stride >= 2 ** 21) return null;
    return new ByteLevelBpe(vocab, merges, stride, pattern, addPrefixSpace, model.ignore_merges === true, added, normalize, pre?.type === 'ByteLevel');
  }

  /** Token ids of `text`, without the post-processor's special tokens. */
  encode(text: string): number[] {
    const out: number[] = [];
    this.splitAdded(text, this.specialMatcher, (segment) => {
      const normalized = this.normalize ? this.normalize(segment) : segment;
      this.splitAdded(normalized, this.normalMatcher, (plain) => this.encodePlain(plain, out), out);
    }, out);
    return out;
  }

  /** Number of tokens of `text` (same as encode(text).length, without building the array). */
  count(text: string): number {
    this.counted = 0;
    this.splitAdded(text, this.specialMatcher, (segment) => {
      const normalized = this.normalize ? this.normalize(segment) : segment;
      this.splitAdded(normalized, this.normalMatcher, (plain) => this.encodePlain(plain, null), null);
    }, null);
    return this.counted;
  }
  private counted = 0;

  /** The text each token stands for (bytes decoded as UTF-8 per token; partial characters show as U+FFFD). */
  tokenTexts(ids: readonly number[]): string[] {
    const decoder = new TextDecoder();
    return ids.map((id) => {
      const token = this.idToToken[id];
      if (token === undefined) return '';
      if (this.addedIds.has(token)) return token;
      const bytes = new Uint8Array(token.length);
      for (let i = 0; i < token.length; i++) bytes[i] = this.byteOf.get(token[i]!) ?? 63;
      return decoder.decode(bytes);
    });
  }

  idOf(token: string): number | null {
    return this.addedIds.get(token) ?? this.vocab.get(token) ?? null;
  }

  private splitAdded(text: string, matcher: RegExp | null, plain: (segment: string) => void, out: number[] | null): void {
    if (matcher === null) {
      if (text.length > 0) plain(text);
      return;
    }
    matcher.lastIndex = 0;
    let last = 0;
    for (let m = matcher.exec(text); m !== null; m = matcher.exec(text)) {
      if (m.index > last) plain(text.slice(last, m.index));
      const content = m[0].replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '');
      if (out) out.push(this.addedIds.get(this.addedIds.has(m[0]) ? m[0] : content)!);
      else this.counted++;
      last = m.index + m[0].length;
    }
    if (last < text.length) plain(text.slice(last));
  }

  private encodePlain(text: string, out: number[] | null): void {
    if (this.addPrefixSpace && !text.startsWith(' ')) text = ' ' + text;
    if (this.ascii && !NON_ASCII.test(text)) {
      this.counted += this.ascii.encode(text, out);
      return;
    }
    const regex = this.pieceRegex;
    regex.lastIndex = 0;
    let last = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      if (m.index > last) this.encodePiece(text.slice(last, m.index), out);
      if (m[0].length === 0) {
        regex.lastIndex++;
        continue;
      }
      this.encodePiece(m[0], out);
      last = m.index + m[0].length;
    }
    if (last < text.length) this.encodePiece(text.slice(last), out);
  }

  private encodePiece(piece: string, out: number[] | null): void {
    let ids = this.cache.get(piece);
    if (ids === undefined) {
      ids = this.bpe(piece);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(piece, ids);
    }
    if (out === null) this.counted += ids.length;
    else for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }

  /** BPE of one pre-tokenized piece: merges applied lowest rank first, leftmost first on equal ranks. */
  private bpe(piece: string): number[] {
    const bytes = Buffer.from(piece, 'utf8');
    const n = bytes.length;
    if (this.ignoreMerges) {
      let mapped = '';
      for (let i = 0; i < n; i++) mapped += this.idToToken[this.byteIds[bytes[i]!]!];
      const whole = this.vocab.get(mapped);
      if (whole !== undefined) return [whole];
    }
    const sym = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      sym[i] = this.byteIds[bytes[i]!]!;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    if (n === 1) return [sym[0]!];
    const heap = new MergeHeap();
    const stride = this.stride;
    const push = (left: number): void => {
      const right = next[left]!;
      if (right < 0) return;
      const entry = this.merges.get(sym[left]! * stride + sym[right]!);
      if (entry !== undefined) heap.push(Math.floor(entry / 2 ** 21), left, sym[left]!, sym[right]!, entry % 2 ** 21);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (heap.size > 0) {
      heap.pop();
      const left = heap.pos;
      const right = next[left]!;
      // Stale entries: the left symbol was merged away (-2) or either side changed since the push.
      if (sym[left] !== heap.leftId || right < 0 || sym[right] !== heap.rightId) continue;
      sym[left] = heap.mergedId;
      sym[right] = -2;
      const after = next[right]!;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      if (prev[left]! >= 0) push(prev[left]!);
      push(left);
    }
    const result: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) result.push(sym[i]!);
    return result;
  }
}

/** A binary min-heap of merge candidates ordered by (rank, position); pop() fills the public fields. */
class MergeHeap {
  private ranks: number[] = [];
  private positions: number[] = [];
  private lefts: number[] = [];
  private rights: number[] = [];
  private mergeds: number[] = [];
  size = 0;
  pos = 0;
  leftId = 0;
  rightId = 0;
  mergedId = 0;

  push(rank: number, pos: number, left: number, right: number, merged: number): void {
    let i = this.size++;
    this.ranks[i] = rank;
    this.positions[i] = pos;
    this.lefts[i] = left;
    this.rights[i] = right;
    this.mergeds[i] = merged;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): void {
    this.pos = this.positions[0]!;
    this.leftId = this.lefts[0]!;
    this.rightId = this.rights[0]!;
    this.mergedId = this.mergeds[0]!;
    const last = --this.size;
    if (last > 0) {
      this.ranks[0] = this.ranks[last]!;
      this.positions[0] = this.positions[last]!;
      this.lefts[0] = this.lefts[last]!;
      this.rights[0] = this.rights[last]!;
      this.mergeds[0] = this.mergeds[last]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < last && this.less(l, smallest)) smallest = l;
        if (r < last && this.less(r, smallest)) smallest = r;
        if (smallest === i) break;
        this.swap(i, smallest);
        i = smallest;
      }
    }
  }

  private less(a: number, b: number): boolean {
    const ra = this.ranks[a]!;
    const rb = this.ranks[b]!;
    return ra < rb || (ra === rb && this.positions[a]! < this.positions[b]!);
  }

  private swap(a: number, b: number): void {
    for (const arr of [this.ranks, this.positions, this.lefts, this.rights, this.mergeds]) {
      const t = arr[a]!;
      arr[a] = arr[b]!;
      arr[b] = t;
    }
  }
}
