/** LSP shapes of the lint results: diagnostics, quick fixes, hover, CodeLens, completion. */
import {
  CodeActionKind,
  CompletionItemKind,
  DiagnosticSeverity,
  MarkupKind,
  type CodeAction,
  type CodeLens,
  type CompletionItem,
  type Diagnostic,
  type Hover,
  type Position,
  type Range,
} from 'vscode-languageserver/node';
import { configCompletions, configHover } from './schema-assist';
import { recordHover } from './hover';
import { datasetLensTitle } from './lens';
import { pathToUri, type LintService, type OpenDocument } from './service';
import type { LintDiagnostic } from './types';

export const SOURCE = 'qlora-studio';

const SEVERITY = { error: DiagnosticSeverity.Error, warning: DiagnosticSeverity.Warning, information: DiagnosticSeverity.Information, hint: DiagnosticSeverity.Hint } as const;

export function toLspDiagnostic(d: LintDiagnostic): Diagnostic {
  const out: Diagnostic = { range: d.range, severity: SEVERITY[d.severity], code: d.code, source: SOURCE, message: d.message };
  if (d.related?.length) out.relatedInformation = d.related.map((r) => ({ location: { uri: pathToUri(r.file), range: r.range }, message: r.message }));
  return out;
}

/** At most this many diagnostics per file go to the editor (the CLI prints all). */
export const MAX_PUBLISHED = 5000;

/** The diagnostics to publish: all of them, or the first MAX_PUBLISHED by severity and a note saying how many more. */
export function publishable(diagnostics: LintDiagnostic[]): Diagnostic[] {
  if (diagnostics.length <= MAX_PUBLISHED) return diagnostics.map(toLspDiagnostic);
  const rank = { error: 0, warning: 1, information: 2, hint: 3 } as const;
  const shown = [...diagnostics].sort((a, b) => rank[a.severity] - rank[b.severity]).slice(0, MAX_PUBLISHED);
  shown.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  const note: Diagnostic = {
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
    severity: DiagnosticSeverity.Information,
    code: 'lint/truncated',
    source: SOURCE,
    message: `${diagnostics.length.toLocaleString('en-US')} problems; the ${MAX_PUBLISHED.toLocaleString('en-US')} most severe are shown (\`qlora-studio lint\` lists all)`,
  };
  return [note, ...shown.map(toLspDiagnostic)];
}

function sameRange(a: Range, b: Range): boolean {
  return a.start.line === b.start.line && a.start.character === b.start.character && a.end.line === b.end.line && a.end.character === b.end.character;
}

function overlaps(a: Range, b: Range): boolean {
  const before = (p: Position, q: Position): boolean => p.line < q.line || (p.line === q.line && p.character < q.character);
  return !before(a.end, b.start) && !before(b.end, a.start);
}

/** Quick fixes for the diagnostics in the request's range (matched to the stored ones by code and range). */
export function codeActions(service: LintService, uri: string, range: Range, requested: Diagnostic[]): CodeAction[] {
  const state = service.state(uri);
  if (!state) return [];
  const actions: CodeAction[] = [];
  for (const d of state.diagnostics) {
    if (!d.fixes?.length || !overlaps(d.range, range)) continue;
    const lsp = requested.find((r) => r.code === d.code && sameRange(r.range, d.range)) ?? toLspDiagnostic(d);
    for (const fix of d.fixes) {
      actions.push({ title: fix.title, kind: CodeActionKind.QuickFix, diagnostics: [lsp], isPreferred: true, edit: { changes: { [uri]: fix.edits } } });
    }
  }
  return actions;
}

export function hover(service: LintService, doc: OpenDocument, position: Position): Hover | null {
  const state = service.state(doc.uri);
  if (!state) return null;
  let markdown: string | null = null;
  if (state.kind === 'dataset' && state.ctx) {
    const line = doc.lineAt(position.line);
    markdown = line.trim() ? recordHover(line, position.line, state.ctx) : null;
  } else if (state.kind === 'config') {
    markdown = configHover(doc.getText(), position.line, position.character);
  }
  return markdown ? { contents: { kind: MarkupKind.Markdown, value: markdown } } : null;
}

export function codeLenses(service: LintService, uri: string): CodeLens[] {
  const state = service.state(uri);
  if (!state) return [];
  const top: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  if (state.kind === 'dataset' && state.result) {
    const chat = state.ctx?.chat ?? null;
    return [{ range: top, command: { title: datasetLensTitle(state.result.stats, !!(state.ctx?.template || chat), chat), command: '' } }];
  }
  if (state.kind === 'config') return [{ range: top, command: { title: service.planTitle(state), command: '' } }];
  return [];
}

export async function completion(service: LintService, doc: OpenDocument, position: Position): Promise<CompletionItem[]> {
  const state = service.state(doc.uri);
  if (!state) return [];
  const before = doc.lineAt(position.line).slice(0, position.character);
  if (state.kind === 'template') {
    const open = Math.max(before.lastIndexOf('{{'), before.lastIndexOf('{%'));
    if (open < 0 || before.indexOf(before[open + 1] === '{' ? '}}' : '%}', open) >= 0) return [];
    const { fields } = await service.templateFacts(state.file);
    if (!fields) return [];
    return [...fields.names].sort().map((name) => ({ label: name, kind: CompletionItemKind.Field, detail: `field of ${fields.source}` }));
  }
  if (state.kind === 'config') {
    return configCompletions(doc.getText(), position.line, position.character).map((c) => ({
      label: c.label,
      kind: c.kind === 'property' ? CompletionItemKind.Property : CompletionItemKind.Value,
      detail: c.detail,
      documentation: { kind: MarkupKind.Markdown, value: c.documentation },
      insertText: c.insertText,
    }));
  }
  return [];
}
