/**
 * What every lint rule produces, independent of LSP (the server converts, the CLI prints). Positions are
 * 0-based lines and UTF-16 columns, as LSP's; the CLI adds 1.
 */

export type Severity = 'error' | 'warning' | 'information' | 'hint';

export interface Pos {
  line: number;
  character: number;
}

export interface Span {
  start: Pos;
  end: Pos;
}

export interface Edit {
  range: Span;
  newText: string;
}

export interface Fix {
  title: string;
  edits: Edit[];
}

export interface Related {
  file: string;
  range: Span;
  message: string;
}

export interface LintDiagnostic {
  range: Span;
  severity: Severity;
  /** Stable code, `area/name` (docs/lint.md lists them). */
  code: string;
  message: string;
  fixes?: Fix[];
  related?: Related[];
}

/** A diagnostic inside one line: columns only, so it can be cached by the line's text. */
export interface LineDiag {
  start: number;
  end: number;
  severity: Severity;
  code: string;
  message: string;
  fix?: { title: string; edits: { start: number; end: number; newText: string }[] };
}

export function span(line: number, start: number, end: number, endLine = line): Span {
  return { start: { line, character: start }, end: { line: endLine, character: end } };
}

export function atLine(line: number, d: LineDiag): LintDiagnostic {
  const out: LintDiagnostic = { range: span(line, d.start, d.end), severity: d.severity, code: d.code, message: d.message };
  if (d.fix) out.fixes = [{ title: d.fix.title, edits: d.fix.edits.map((e) => ({ range: span(line, e.start, e.end), newText: e.newText })) }];
  return out;
}

/** Offsets in a text -> positions (for template and config files). */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }
  pos(offset: number): Pos {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: offset - this.starts[lo]! };
  }
  span(start: number, end: number): Span {
    return { start: this.pos(start), end: this.pos(Math.max(start, end)) };
  }
  lineLength(line: number): number {
    const start = this.starts[line] ?? this.text.length;
    const next = this.starts[line + 1];
    const end = next === undefined ? this.text.length : next - 1;
    return Math.max(0, end - start - (this.text[end - 1] === '\r' ? 1 : 0));
  }
}
