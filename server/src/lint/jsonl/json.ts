/**
 * A small JSON scanner for one JSONL line, used only where JSON.parse is not enough: the offset and wording of
 * a syntax error (V8's messages do not always carry a position), and the ranges of fields (the top-level ones,
 * or every nested one by path for chat records: `messages[2].content`).
 */

export interface JsonError {
  offset: number;
  message: string;
}

export interface FieldSpan {
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
}

class Scanner {
  i = 0;
  /** Where spans go; `deep`: of every nested value too, not only the top-level fields. */
  constructor(
    readonly s: string,
    readonly spans: Map<string, FieldSpan> | null = null,
    readonly deep = false,
  ) {}

  ws(): void {
    for (;;) {
      const c = this.s.charCodeAt(this.i);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++;
      else return;
    }
  }

  fail(message: string): never {
    throw { offset: this.i, message } satisfies JsonError;
  }

  what(): string {
    if (this.i >= this.s.length) return 'end of line';
    return `'${this.s[this.i]}'`;
  }

  /** `path`: the value's path when its children's spans are wanted ('' for the line's object), else null. */
  value(path: string | null = null): void {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') this.object(path);
    else if (c === '[') this.array(path);
    else if (c === '"') this.string();
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) this.number();
    else if (this.s.startsWith('true', this.i)) this.i += 4;
    else if (this.s.startsWith('false', this.i)) this.i += 5;
    else if (this.s.startsWith('null', this.i)) this.i += 4;
    else if (c === "'") this.fail('strings must use double quotes');
    else this.fail(`expected a value, found ${this.what()}`);
  }

  object(path: string | null): void {
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail(this.s[this.i] === '}' ? 'trailing comma before \'}\'' : `expected a field name in double quotes, found ${this.what()}`);
      const keyStart = this.i;
      const key = this.string();
      const keyEnd = this.i;
      this.ws();
      if (this.s[this.i] !== ':') this.fail(`expected ':' after the field name, found ${this.what()}`);
      this.i++;
      this.ws();
      const valueStart = this.i;
      const child = path === null || !this.spans ? null : path === '' ? key : `${path}.${key}`;
      this.value(this.deep ? child : null);
      if (child !== null && !this.spans!.has(child)) this.spans!.set(child, { keyStart, keyEnd, valueStart, valueEnd: this.i });
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === '}') {
        this.i++;
        return;
      }
      this.fail(`expected ',' or '}' after a field value, found ${this.what()}`);
    }
  }

  array(path: string | null): void {
    this.i++;
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return;
    }
    for (let n = 0; ; n++) {
      this.ws();
      const start = this.i;
      const child = path === null || !this.spans ? null : `${path}[${n}]`;
      this.value(child);
      if (child !== null) this.spans!.set(child, { keyStart: start, keyEnd: start, valueStart: start, valueEnd: this.i });
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        this.ws();
        if (this.s[this.i] === ']') this.fail("trailing comma before ']'");
        continue;
      }
      if (c === ']') {
        this.i++;
        return;
      }
      this.fail(`expected ',' or ']' in a list, found ${this.what()}`);
    }
  }

  string(): string {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.s.charCodeAt(this.i);
      if (Number.isNaN(c)) {
        this.i = start;
        this.fail('string never closed');
      }
      if (c === 34) {
        this.i++;
        return JSON.parse(this.s.slice(start, this.i)) as string;
      }
      if (c < 32) this.fail('control character inside a string (escape it, e.g. \\n)');
      if (c === 92) {
        const e = this.s[this.i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.s.slice(this.i + 2, this.i + 6))) this.fail('invalid \\u escape');
          this.i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) this.fail(`invalid escape '\\${e ?? ''}'`);
        this.i += 2;
        continue;
      }
      this.i++;
    }
  }

  number(): void {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) this.fail('invalid number');
    this.i += m[0].length;
  }
}

/** Where and why a line is not JSON; null when it is. */
export function jsonError(text: string): JsonError | null {
  const s = new Scanner(text);
  try {
    s.value();
    s.ws();
    if (s.i < text.length) s.fail(`unexpected ${s.what()} after the record (one JSON value per line)`);
    return null;
  } catch (error) {
    if (typeof error === 'object' && error !== null && 'offset' in error) return error as JsonError;
    return { offset: 0, message: String(error) };
  }
}

/** Spans of the top-level fields of a line holding a JSON object (first occurrence of each key). */
export function fieldSpans(text: string): Map<string, FieldSpan> {
  return spansOf(text, false);
}

/**
 * Spans of every value in a line holding a JSON object, by path: `messages`, `messages[2]`, `messages[2].content`
 * (an array element's key span is empty, at its value's start).
 */
export function pathSpans(text: string): Map<string, FieldSpan> {
  return spansOf(text, true);
}

function spansOf(text: string, deep: boolean): Map<string, FieldSpan> {
  const fields = new Map<string, FieldSpan>();
  const s = new Scanner(text, fields, deep);
  try {
    s.ws();
    if (text[s.i] === '{') s.object('');
  } catch {
    // spans found before the error are still useful
  }
  return fields;
}
