/**
 * GPT-2's pre-tokenizer (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`) hand-written
 * for ASCII text, fused with the piece cache: pieces are found by scanning character codes, hashed while
 * scanned, and looked up in an open-addressing table compared in place — no regex match objects and no substring
 * per piece. Text with any non-ASCII character goes through the regex instead (the caller checks). Parity with the
 * regex path is tested on the DialogSum sample and on stress strings (test/lsp/tokenizer-parity.test.ts).
 */

const enum Kind {
  Letter,
  Digit,
  Space,
  Other,
}

const KIND = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const isLetter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  const isDigit = c >= 48 && c <= 57;
  const isSpace = (c >= 9 && c <= 13) || c === 32; // Unicode White_Space within ASCII
  KIND[c] = isLetter ? Kind.Letter : isDigit ? Kind.Digit : isSpace ? Kind.Space : Kind.Other;
}

const MAX_ENTRIES = 1 << 19;

export class AsciiPieces {
  private mask = (1 << 16) - 1;
  private hashes = new Int32Array(1 << 16);
  private pieces: (string | undefined)[] = new Array(1 << 16);
  private ids: (number[] | undefined)[] = new Array(1 << 16);
  private size = 0;

  constructor(private readonly bpe: (piece: string) => number[]) {}

  /** Appends the ids of ASCII `text` to `out` (or only counts them, when out is null); returns the count added. */
  encode(text: string, out: number[] | null): number {
    const n = text.length;
    let count = 0;
    let i = 0;
    while (i < n) {
      const start = i;
      const c = text.charCodeAt(i);
      let h = 0x811c9dc5;
      let end = -1;
      if (c === 39 && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d === 115 || d === 116 || d === 109 || d === 100) end = i + 2; // 's 't 'm 'd
        else if (i + 2 < n) {
          const e = text.charCodeAt(i + 2);
          if ((d === 114 && e === 101) || (d === 118 && e === 101) || (d === 108 && e === 108)) end = i + 3; // 're 've 'll
        }
      }
      if (end < 0) {
        let j = i;
        let kind = KIND[c]!;
        if (c === 32 && i + 1 < n && KIND[text.charCodeAt(i + 1)] !== Kind.Space) {
          j = i + 1;
          kind = KIND[text.charCodeAt(j)]!;
        }
        if (kind === Kind.Space) {
          let k = i;
          while (k < n && KIND[text.charCodeAt(k)] === Kind.Space) k++;
          end = k === n || k - i < 2 ? (k === n ? n : i + 1) : k - 1;
        } else {
          let k = j + 1;
          while (k < n && KIND[text.charCodeAt(k)] === kind) k++;
          end = k;
        }
      }
      for (let k = start; k < end; k++) h = Math.imul(h ^ text.charCodeAt(k), 0x01000193);
      const ids = this.lookup(text, start, end, h);
      count += ids.length;
      if (out !== null) for (let k = 0; k < ids.length; k++) out.push(ids[k]!);
      i = end;
    }
    return count;
  }

  private lookup(text: string, start: number, end: number, h: number): number[] {
    const len = end - start;
    let idx = h & this.mask;
    for (;;) {
      const piece = this.pieces[idx];
      if (piece === undefined) break;
      if (this.hashes[idx] === h && piece.length === len && text.startsWith(piece, start)) return this.ids[idx]!;
      idx = (idx + 1) & this.mask;
    }
    const piece = text.slice(start, end);
    const ids = this.bpe(piece);
    if (this.size >= MAX_ENTRIES) this.reset();
    else if (2 * (this.size + 1) > this.mask + 1) this.grow();
    this.insert(piece, ids, h);
    return ids;
  }

  private insert(piece: string, ids: number[], h: number): void {
    let idx = h & this.mask;
    while (this.pieces[idx] !== undefined) idx = (idx + 1) & this.mask;
    this.pieces[idx] = piece;
    this.ids[idx] = ids;
    this.hashes[idx] = h;
    this.size++;
  }

  private grow(): void {
    const { pieces, ids, hashes } = this;
    const capacity = (this.mask + 1) * 2;
    this.mask = capacity - 1;
    this.hashes = new Int32Array(capacity);
    this.pieces = new Array(capacity);
    this.ids = new Array(capacity);
    this.size = 0;
    for (let i = 0; i < pieces.length; i++) if (pieces[i] !== undefined) this.insert(pieces[i]!, ids[i]!, hashes[i]!);
  }

  private reset(): void {
    this.hashes.fill(0);
    this.pieces = new Array(this.mask + 1);
    this.ids = new Array(this.mask + 1);
    this.size = 0;
  }
}
