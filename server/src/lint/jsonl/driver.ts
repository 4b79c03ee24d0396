/**
 * Lints a JSONL text (or the lines of an open document): every line through the line rules (cached by the line's
 * text, per lint context), then the file rules over the lines' facts. Works in slices of a few milliseconds, yielding to the event loop between
 * them and giving up (null) as soon as `isCancelled` says a newer edit arrived — a 200,000-line file never
 * blocks the server. Rules never throw: a crash becomes one `lint/internal` diagnostic and a log line.
 */
import { fileRules, lineRules } from '../jsonl-rules';
import type { FileInput, LineFacts } from '../rule';
import { atLine, span, type LineDiag, type LintDiagnostic } from '../types';
import { splitText, type Lines } from '../documents';
import { hashText, type DatasetContext } from './dataset-config';
import { deriveLine } from './derive';
import type { RawFacts } from './raw';

export interface DatasetStats {
  records: number;
  /** Records with token counts (a template and a tokenizer). */
  tokenized: number;
  medianTokens: number | null;
  p95Tokens: number | null;
  maxTokens: number | null;
  overLimit: number;
  duplicates: number;
  maxLength: number | null;
}

export interface JsonlResult {
  diagnostics: LintDiagnostic[];
  facts: LineFacts[];
  stats: DatasetStats;
}

export interface LintControl {
  /** Checked between slices; true abandons the run (the result is null). */
  isCancelled?: () => boolean;
  /** Longest stretch of work between yields (default 8 ms). */
  sliceMs?: number;
}

/** Line results by line text, kept for one lint context at a time (a new template or tokenizer starts afresh). */
export class LineCache {
  private key = '';
  private map = new Map<string, LineFacts>();
  /** Per file rule: what it read last time and what it reported. */
  readonly ruleMemo = new Map<string, { ctx: DatasetContext; deps: unknown[]; lengths: number[]; finalNewline: boolean; diagnostics: LintDiagnostic[] }>();
  /** The last run's facts and statistics. */
  lastStats: { facts: LineFacts[]; duplicates: number; stats: DatasetStats } | null = null;

  forContext(key: string): Map<string, LineFacts> {
    if (key !== this.key) {
      this.key = key;
      this.map = new Map();
      this.ruleMemo.clear();
      this.lastStats = null;
    }
    return this.map;
  }

  replace(map: Map<string, LineFacts>): void {
    this.map = map;
  }

  get size(): number {
    return this.map.size;
  }
}

const yieldNow = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function lintJsonl(
  source: string | Lines,
  ctx: DatasetContext,
  options: { raw?: RawFacts | null; cache?: LineCache; control?: LintControl } = {},
): Promise<JsonlResult | null> {
  const control = options.control ?? {};
  const sliceMs = control.sliceMs ?? 8;
  const cache = options.cache ?? new LineCache();
  const previous = cache.forContext(ctx.key);
  const { lines: allLines, breaks } = typeof source === 'string' ? splitText(source) : source;
  // A text ending with a break has an empty last line in the editor's numbering; it is not a record.
  const finalNewline = allLines.length > 1 && allLines[allLines.length - 1] === '' && breaks[allLines.length - 2] !== '';
  const lineCount = finalNewline ? allLines.length - 1 : allLines.length === 1 && allLines[0] === '' ? 0 : allLines.length;
  const textBom = lineCount > 0 && allLines[0]!.charCodeAt(0) === 0xfeff;
  // Results by line text. An unchanged line of an open document is the same string as last time, so finding it
  // costs a pointer compare. Rebuilt from the current lines when it grows past twice their number.
  const next = previous.size > 2 * lineCount + 1000 ? new Map<string, LineFacts>() : previous;
  const facts: LineFacts[] = new Array(lineCount);
  const crlfLines: number[] = [];
  const lfLines: number[] = [];
  const diagnostics: LintDiagnostic[] = [];
  let sliceStart = performance.now();
  const lengths: number[] = new Array(lineCount);
  for (let line = 0; line < lineCount; line++) {
    const raw = allLines[line]!;
    const content = line === 0 && textBom ? raw.slice(1) : raw;
    lengths[line] = raw.length;
    let f = next.get(content);
    if (f === undefined) {
      f = previous.get(content) ?? analyzeLine(content, ctx);
      next.set(content, f);
    }
    facts[line] = f;
    if (breaks[line] === '\r\n') crlfLines.push(line);
    else if (breaks[line] === '\n') lfLines.push(line);
    const shift = line === 0 && textBom ? 1 : 0;
    for (const d of f.diags) diagnostics.push(atLine(line, shift ? shifted(d, shift) : d));
    if ((line & 63) === 0 && performance.now() - sliceStart > sliceMs) {
      await yieldNow();
      if (control.isCancelled?.()) return null;
      sliceStart = performance.now();
    }
  }
  cache.replace(next);

  const raw = options.raw ?? null;
  const input: FileInput = {
    file: ctx.file,
    facts,
    crlfLines,
    lfLines,
    bom: textBom || !!raw?.bom,
    invalidUtf8: raw?.invalidUtf8 ?? [],
    diskMixedLineEndings: !!raw?.mixedLineEndings,
    lineLength: (l) => lengths[l] ?? 0,
    lineCount,
    finalNewline,
  };
  for (const rule of fileRules) {
    let deps: unknown[] | null = null;
    if (rule.memo) {
      deps = facts.map(rule.memo);
      const last = cache.ruleMemo.get(rule.id);
      if (last && last.ctx === ctx && last.finalNewline === finalNewline && sameArray(last.deps, deps) && sameArray(last.lengths, lengths)) {
        for (const d of last.diagnostics) diagnostics.push(d);
        continue;
      }
    }
    const reported: LintDiagnostic[] = [];
    try {
      const steps = rule.check(input, ctx, (d) => reported.push(d));
      if (steps) {
        for (const _ of steps) {
          if (performance.now() - sliceStart > sliceMs) {
            await yieldNow();
            if (control.isCancelled?.()) return null;
            sliceStart = performance.now();
          }
        }
      }
      if (deps) cache.ruleMemo.set(rule.id, { ctx, deps, lengths, finalNewline, diagnostics: reported });
    } catch (error) {
      ctx.log(`lint rule ${rule.id} crashed: ${(error as Error).stack ?? String(error)}`);
      reported.push({ range: span(0, 0, 0), severity: 'error', code: 'lint/internal', message: `internal error in lint rule ${rule.id}: ${(error as Error).message} (see the log)` });
    }
    for (const d of reported) diagnostics.push(d);
    if (performance.now() - sliceStart > sliceMs) {
      await yieldNow();
      if (control.isCancelled?.()) return null;
      sliceStart = performance.now();
    }
  }
  diagnostics.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  await yieldNow();
  if (control.isCancelled?.()) return null;
  const duplicates = diagnostics.filter((d) => d.code === 'jsonl/duplicate').length;
  const last = cache.lastStats;
  const result = last && last.duplicates === duplicates && sameArray(last.facts, facts) ? last.stats : stats(facts, duplicates, ctx);
  cache.lastStats = { facts, duplicates, stats: result };
  return { diagnostics, facts, stats: result };
}

function sameArray(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function shifted(d: LineDiag, by: number): LineDiag {
  return {
    ...d,
    start: d.start + by,
    end: d.end + by,
    fix: d.fix && { title: d.fix.title, edits: d.fix.edits.map((e) => ({ ...e, start: e.start + by, end: e.end + by })) },
  };
}

export function analyzeLine(text: string, ctx: DatasetContext): LineFacts {
  const input = deriveLine(text, ctx);
  const diags: LineDiag[] = [];
  for (const rule of lineRules) {
    try {
      rule.check(input, ctx, (d) => diags.push(d));
    } catch (error) {
      ctx.log(`lint rule ${rule.id} crashed on ${JSON.stringify(text.slice(0, 80))}: ${(error as Error).stack ?? String(error)}`);
      diags.push({ start: 0, end: text.length, severity: 'error', code: 'lint/internal', message: `internal error in lint rule ${rule.id}: ${(error as Error).message} (see the log)` });
    }
  }
  const kind: LineFacts['kind'] = text.trim() === '' ? 'blank' : !input.parsed ? 'invalid' : input.record ? 'record' : 'value';
  let key: string | null = null;
  if (input.rendered) key = hashText(input.rendered.prompt);
  else if (input.chat?.prompt) key = hashText(input.chat.prompt);
  else if (input.record && !ctx.template && !ctx.chat?.template) key = hashText(text.trim());
  const keys = input.record ? Object.keys(input.record) : null;
  return { kind, diags, keys, keySignature: keys ? keys.join('\u0000') : null, key, counts: input.counts };
}

/** Index of the first value >= x in a sorted array. */
function lowerBound(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function stats(facts: LineFacts[], duplicates: number, ctx: DatasetContext): DatasetStats {
  const all = new Float64Array(facts.length);
  let n = 0;
  let records = 0;
  for (const f of facts) {
    if (f.kind === 'record') records++;
    if (f.counts) all[n++] = f.counts.prompt + f.counts.response;
  }
  const totals = all.subarray(0, n).sort();
  const pick = (q: number): number | null => (totals.length ? totals[Math.min(totals.length - 1, Math.ceil(q * totals.length) - 1)]! : null);
  const limit = ctx.maxLength;
  return {
    records,
    tokenized: totals.length,
    medianTokens: pick(0.5),
    p95Tokens: pick(0.95),
    maxTokens: totals.length ? totals[totals.length - 1]! : null,
    overLimit: limit === null ? 0 : totals.length - lowerBound(totals, limit + 1),
    duplicates,
    maxLength: limit,
  };
}
