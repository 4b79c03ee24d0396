/** Facts only the bytes on disk tell (the editor's text has them decoded away): BOM, invalid UTF-8, line endings. */
import * as fs from 'node:fs';

export interface RawFacts {
  bom: boolean;
  invalidUtf8: { line: number; column: number }[];
  mixedLineEndings: boolean;
}

const MAX_INVALID_LINES = 1000;

const CHUNK = 1 << 22;

/** rawFacts over a file read asynchronously, in 4 MiB slices with the event loop served between them. */
export async function rawFactsOfFile(file: string): Promise<RawFacts | null> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch {
    return null;
  }
  const scan = new Scan();
  for (let at = 0; at < bytes.length; at += CHUNK) {
    scan.add(bytes.subarray(at, Math.min(bytes.length, at + CHUNK)), at + CHUNK >= bytes.length);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return scan.finish(bytes);
}

export function rawFacts(bytes: Uint8Array): RawFacts {
  const scan = new Scan();
  scan.add(bytes, true);
  return scan.finish(bytes);
}

/** Line-ending counts and UTF-8 validity, fed slice by slice. */
class Scan {
  crlf = 0;
  lf = 0;
  valid = true;
  private previous = -1;
  private readonly fatal = new TextDecoder('utf-8', { fatal: true });

  add(chunk: Uint8Array, last: boolean): void {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
      if ((i > 0 ? chunk[i - 1] : this.previous) === 13) this.crlf++;
      else this.lf++;
    }
    if (chunk.length > 0) this.previous = chunk[chunk.length - 1]!;
    if (!this.valid) return;
    try {
      this.fatal.decode(chunk, { stream: !last });
    } catch {
      this.valid = false;
    }
  }

  finish(bytes: Uint8Array): RawFacts {
    return invalidLines(bytes, this.valid, this.crlf, this.lf);
  }
}

function invalidLines(bytes: Uint8Array, valid: boolean, crlf: number, lf: number): RawFacts {
  const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const invalidUtf8: RawFacts['invalidUtf8'] = [];
  const fatal = new TextDecoder('utf-8', { fatal: true });
  if (!valid) {
    const lenient = new TextDecoder('utf-8');
    let line = 0;
    let start = 0;
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    while (start <= buf.length && invalidUtf8.length < MAX_INVALID_LINES) {
      let end = buf.indexOf(10, start);
      if (end < 0) end = buf.length;
      const lineBytes = buf.subarray(start, end);
      try {
        fatal.decode(lineBytes);
      } catch {
        const bad = firstInvalid(lineBytes);
        const column = lenient.decode(lineBytes.subarray(line === 0 && bom ? 3 : 0, bad)).length;
        invalidUtf8.push({ line, column });
      }
      line++;
      start = end + 1;
    }
  }
  return { bom, invalidUtf8, mixedLineEndings: crlf > 0 && lf > 0 };
}

/** Offset of the first byte that starts an invalid UTF-8 sequence. */
function firstInvalid(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xf0 && c < 0xf5 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    if ((c === 0xe0 && b[i + 1]! < 0xa0) || (c === 0xed && b[i + 1]! >= 0xa0) || (c === 0xf0 && b[i + 1]! < 0x90) || (c === 0xf4 && b[i + 1]! >= 0x90)) return i;
    i += n + 1;
  }
  return 0;
}
