/**
 * The two kinds of lint rule. Line rules see one JSONL line (already parsed, rendered and tokenized once by the
 * driver, shared by every rule) and their results are cached by the line's text; file rules see every line's
 * facts and the file's raw facts. A rule never throws: the driver turns a crash into one `lint/internal`
 * diagnostic and logs it.
 */
import type { ChatProblem, ChatSegment, Turn } from '../templates/chat';
import type { RenderedRecord } from '../templates/template';
import type { DatasetContext } from './jsonl/dataset-config';
import type { FieldSpan } from './jsonl/json';
import type { LineDiag, LintDiagnostic } from './types';

export interface LineInput {
  /** The line without its line break (and without a leading BOM on line 0). */
  text: string;
  /** JSON.parse succeeded. */
  parsed: boolean;
  value: unknown;
  /** The value when it is a JSON object. */
  record: Record<string, unknown> | null;
  /** Template fields this record lacks or has in an unusable form (the template is not rendered then). */
  badFields: string[];
  rendered: RenderedRecord | null;
  /** A test-split record without the response's fields: only the prompt was rendered (response is ''). */
  promptOnly: boolean;
  renderError: string | null;
  /** Token counts: prompt (with the tokenizer's BOM) and response (with EOS). */
  counts: { prompt: number; response: number } | null;
  /** A chat record (the context has a chat format): its turns, problems, segments and token counts. */
  chat: ChatLine | null;
  /** Ranges of the top-level fields (computed on first use). */
  fields(): Map<string, FieldSpan>;
  /** Ranges of every nested value by path, `messages[2].content` (computed on first use). */
  paths(): Map<string, FieldSpan>;
}

export interface ChatLine {
  /** Meaningful only when `problems` is empty. */
  turns: Turn[];
  problems: ChatProblem[];
  /** The conversation cut by the chat template (null: problems, no chat template, or input.renderError). */
  segments: ChatSegment[] | null;
  /** What the model is given to write the last assistant turn (duplicate and leakage keys). */
  prompt: string | null;
  /** Tokens of the whole conversation and of its trained segments; the prompt's in a test split, else null. */
  counts: { total: number; trained: number; prompt: number | null } | null;
}

/** What the driver keeps of a line (cached by text): diagnostics and the facts file rules need. */
export interface LineFacts {
  kind: 'blank' | 'invalid' | 'value' | 'record';
  diags: LineDiag[];
  keys: string[] | null;
  /** The keys joined: records of one shape share it, so file rules can skip shapes already seen. */
  keySignature: string | null;
  /** Duplicate/leakage key: hash of the rendered prompt (with a template) or of the line (without). */
  key: string | null;
  counts: { prompt: number; response: number } | null;
}

export interface FileInput {
  file: string | null;
  facts: LineFacts[];
  /** Line break kinds in the text (`\r\n` vs `\n`), with the lines that use the minority kind. */
  crlfLines: number[];
  lfLines: number[];
  /** The text or the bytes on disk begin with a UTF-8 byte order mark. */
  bom: boolean;
  /** Lines (0-based) and columns of invalid UTF-8 sequences, from the bytes. */
  invalidUtf8: { line: number; column: number }[];
  /** The bytes on disk mix line endings while the text does not (the editor normalized them). */
  diskMixedLineEndings: boolean;
  /** Length of each line, for whole-line ranges. */
  lineLength(line: number): number;
  lineCount: number;
  /** The text ends with a line break (so the last line can be removed with the break after it). */
  finalNewline: boolean;
}

export interface LineRule {
  id: string;
  scope: 'line';
  codes: readonly string[];
  check(input: LineInput, ctx: DatasetContext, report: (d: LineDiag) => void): void;
}

export interface FileRule {
  id: string;
  scope: 'file';
  codes: readonly string[];
  /**
   * A rule over many lines is a generator that yields every few thousand lines: the driver then serves the event
   * loop (and notices a newer edit) between its yields.
   */
  check(input: FileInput, ctx: DatasetContext, report: (d: LintDiagnostic) => void): void | Iterable<void>;
  /**
   * What the rule reads of each line, besides its length. When none of it changed since the last run (same
   * lint context), the last run's diagnostics are reused: an edit that leaves every key alone skips the rule.
   */
  memo?: (facts: LineFacts) => unknown;
}

export type JsonlRule = LineRule | FileRule;
