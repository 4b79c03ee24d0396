/**
 * How `summarize` shows a summary: the text alone on stdout (labelled sections with --base), streamed as it is
 * generated on a terminal, printed once complete elsewhere; or one JSON object (`--json`).
 */
import type * as L from '../../../protocol/lsp';
import type { BoundInput } from '../summarize/input';
import type { Summary } from '../summarize/generate';
import type { Output } from './output';

export interface SummaryContext {
  configFile: string;
  adapter: string;
  /** The input file, or `-` for stdin. */
  input: string;
  bound: BoundInput;
  maxNewTokens: number;
  temperature: number;
}

/** What `--json` prints: the summaries (trimmed, as the editor shows them), their tokens and the time taken. */
export function summaryJson(c: SummaryContext, summary: Summary, totalSeconds: number): Record<string, unknown> {
  const compared = summary.base !== null;
  return {
    config: c.configFile,
    adapter: c.adapter,
    input: c.input,
    variable: c.bound.variable,
    prompt: c.bound.prompt,
    maxNewTokens: c.maxNewTokens,
    temperature: c.temperature,
    summary: summary.adapter.text.trim(),
    ...(compared ? { baseSummary: summary.base!.text.trim() } : {}),
    tokens: { prompt: summary.adapter.promptTokens, summary: summary.adapter.newTokens, ...(compared ? { baseSummary: summary.base!.newTokens } : {}) },
    timings: { generateSeconds: summary.seconds, totalSeconds },
  };
}

/**
 * The shown part of a text still growing: from its first visible character to its last whole word. What follows may
 * yet change (a stop string completes and is cut, a character's bytes are not all decoded), so it waits; the text
 * shown stays a prefix of the final one.
 */
export function settledText(text: string): string {
  const start = text.trimStart();
  const partial = start.indexOf('\uFFFD');
  const clean = partial < 0 ? start : start.slice(0, partial);
  const word = /^[\s\S]*\S(?=\s)/.exec(clean);
  return word ? word[0] : '';
}

export class TextSummaryView {
  private shown = '';
  private headed = false;
  /** Ctrl-C: what the stream still sends is not shown. */
  private interrupted = false;

  constructor(
    private readonly out: Output,
    /** With --base: the labels of the two sections. */
    private readonly labels: { adapter: string; base: string } | null,
  ) {}

  /** The adapter's summary streams on a terminal; a pipe gets it once complete. */
  get streaming(): boolean {
    return this.out.isTTY === true;
  }

  /** A streamed update; the base model's row (--base) is printed once complete, below the adapter's. */
  update(u: L.GenerateDidStreamParams): void {
    if (u.base || !this.streaming || this.interrupted) return;
    const text = u.done ? u.text.trim() : settledText(u.text);
    if (text.length <= this.shown.length || !text.startsWith(this.shown)) return;
    this.head();
    this.out.write(text.slice(this.shown.length));
    this.shown = text;
  }

  /** Ctrl-C: the stream ends where it is, and what is written next (stderr's note) starts on a line of its own. */
  interrupt(): void {
    if (this.shown && !this.interrupted) this.out.write('\n');
    this.interrupted = true;
  }

  finished(summary: Summary): void {
    this.head();
    const text = summary.adapter.text.trim();
    // What was shown is a prefix of the final text unless a stop string spanned words: then the whole text again.
    this.out.write(text.startsWith(this.shown) ? `${text.slice(this.shown.length)}\n` : `\n${text}\n`);
    this.shown = '';
    if (this.labels && summary.base) this.out.write(`\n${this.labels.base}:\n${summary.base.text.trim()}\n`);
  }

  private head(): void {
    if (this.headed) return;
    this.headed = true;
    if (this.labels) this.out.write(`${this.labels.adapter}:\n`);
  }
}
