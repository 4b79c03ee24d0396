/**
 * Open documents kept as arrays of lines, not one string. An edit replaces only the lines it touches, so a
 * one-line edit of a 12 MB dataset costs microseconds here (a single-string document copies the whole text on
 * every keystroke), and the lines that did not change keep their identity: the lint's per-line cache finds them
 * by a pointer compare. Incremental sync; positions are LSP's (0-based lines, UTF-16 columns).
 */
import {
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  DidSaveTextDocumentNotification,
  type Connection,
  type Range,
  type TextDocumentContentChangeEvent,
} from 'vscode-languageserver/node';

export type LineBreak = '\n' | '\r\n' | '';

export interface Lines {
  /** Each line without its break. */
  lines: readonly string[];
  /** The break after each line ('' for a last line without one). */
  breaks: readonly LineBreak[];
}

/**
 * Splits text into lines at '\n' ('\r\n' counts as one break), as an editor numbers them: text ending with a
 * break has a last, empty line (with break '').
 */
export function splitText(text: string): Lines {
  const lines: string[] = [];
  const breaks: LineBreak[] = [];
  let pos = 0;
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) {
      lines.push(text.slice(pos));
      breaks.push('');
      return { lines, breaks };
    }
    const cr = nl > pos && text.charCodeAt(nl - 1) === 13;
    lines.push(text.slice(pos, cr ? nl - 1 : nl));
    breaks.push(cr ? '\r\n' : '\n');
    pos = nl + 1;
  }
}

export class LineDocument implements Lines {
  lines: string[];
  breaks: LineBreak[];
  private text: string | null;

  constructor(
    readonly uri: string,
    public version: number,
    text: string,
  ) {
    const split = splitText(text);
    this.lines = split.lines as string[];
    this.breaks = split.breaks as LineBreak[];
    this.text = text;
  }

  getText(): string {
    if (this.text === null) {
      let out = '';
      for (let i = 0; i < this.lines.length; i++) out += this.lines[i]! + this.breaks[i]!;
      this.text = out;
    }
    return this.text;
  }

  lineAt(line: number): string {
    return this.lines[line] ?? '';
  }

  /** Applies LSP content changes in order; the line arrays are replaced (copy on write), never mutated. */
  update(changes: readonly TextDocumentContentChangeEvent[], version: number): void {
    for (const change of changes) {
      if ('range' in change) this.replace(change.range, change.text);
      else {
        const split = splitText(change.text);
        this.lines = split.lines as string[];
        this.breaks = split.breaks as LineBreak[];
      }
    }
    this.version = version;
    this.text = null;
  }

  private replace(range: Range, insert: string): void {
    let { start, end } = range;
    if (start.line > end.line || (start.line === end.line && start.character > end.character)) [start, end] = [end, start];
    const last = this.lines.length - 1;
    const at = (p: { line: number; character: number }): [number, number] =>
      p.line > last ? [last, this.lines[last]!.length] : [Math.max(0, p.line), Math.min(p.character, this.lines[Math.max(0, p.line)]!.length)];
    const [sLine, sChar] = at(start);
    const [eLine, eChar] = at(end);
    const middle = splitText(this.lines[sLine]!.slice(0, sChar) + insert + this.lines[eLine]!.slice(eChar));
    const breaks = middle.breaks as LineBreak[];
    breaks[breaks.length - 1] = this.breaks[eLine]!;
    this.lines = [...this.lines.slice(0, sLine), ...middle.lines, ...this.lines.slice(eLine + 1)];
    this.breaks = [...this.breaks.slice(0, sLine), ...breaks, ...this.breaks.slice(eLine + 1)];
  }
}

export interface DocumentEvents {
  opened(doc: LineDocument): void;
  changed(doc: LineDocument): void;
  saved(doc: LineDocument): void;
  closed(uri: string): void;
}

/** The open documents of a connection (the LineDocument counterpart of vscode-languageserver's TextDocuments). */
export class LineDocuments {
  private readonly docs = new Map<string, LineDocument>();

  get(uri: string): LineDocument | undefined {
    return this.docs.get(uri);
  }

  listen(connection: Connection, events: DocumentEvents): void {
    connection.onNotification(DidOpenTextDocumentNotification.type, (p) => {
      const doc = new LineDocument(p.textDocument.uri, p.textDocument.version, p.textDocument.text);
      this.docs.set(doc.uri, doc);
      events.opened(doc);
    });
    connection.onNotification(DidChangeTextDocumentNotification.type, (p) => {
      const doc = this.docs.get(p.textDocument.uri);
      if (!doc) return;
      doc.update(p.contentChanges, p.textDocument.version);
      events.changed(doc);
    });
    connection.onNotification(DidSaveTextDocumentNotification.type, (p) => {
      const doc = this.docs.get(p.textDocument.uri);
      if (doc) events.saved(doc);
    });
    connection.onNotification(DidCloseTextDocumentNotification.type, (p) => {
      this.docs.delete(p.textDocument.uri);
      events.closed(p.textDocument.uri);
    });
  }
}
