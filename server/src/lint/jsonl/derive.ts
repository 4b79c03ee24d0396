/**
 * One JSONL line -> LineInput: parsed once, checked against the template's fields (or read as a conversation in
 * the config's chat format), rendered, tokenized.
 */
import { isRenderable, renderPrompt, renderRecord } from '../../templates/template';
import type { LineInput } from '../rule';
import { deriveChat } from './chat-line';
import type { DatasetContext } from './dataset-config';
import { fieldSpans, pathSpans, type FieldSpan } from './json';

export function deriveLine(text: string, ctx: DatasetContext): LineInput {
  let spans: Map<string, FieldSpan> | null = null;
  let nested: Map<string, FieldSpan> | null = null;
  const input: LineInput = {
    text,
    parsed: false,
    value: undefined,
    record: null,
    badFields: [],
    rendered: null,
    promptOnly: false,
    renderError: null,
    counts: null,
    chat: null,
    fields: () => (spans ??= fieldSpans(text)),
    paths: () => (nested ??= pathSpans(text)),
  };
  if (text.trim() === '') return input;
  try {
    input.value = JSON.parse(text);
    input.parsed = true;
  } catch {
    return input;
  }
  const value = input.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return input;
  const record = value as Record<string, unknown>;
  input.record = record;
  if (ctx.chat) {
    deriveChat(input, record, ctx.chat, ctx);
    return input;
  }
  const template = ctx.template;
  if (!template || !isRenderable(template) || !ctx.variables) return input;
  const testSplit = ctx.role === 'test';
  for (const { name, optional, tested, structured, responseOnly } of ctx.variables) {
    if (optional) continue;
    const v = record[name];
    const bad = tested ? v === undefined : structured ? v === undefined || v === null : typeof v !== 'string' || v === '';
    if (!bad) continue;
    if (testSplit && responseOnly) input.promptOnly = true;
    else input.badFields.push(name);
  }
  if (input.badFields.length > 0) return input;
  try {
    input.rendered = input.promptOnly ? { prompt: renderPrompt(template, record), response: '' } : renderRecord(template, record);
  } catch (error) {
    input.renderError = (error as Error).message;
    return input;
  }
  const tok = ctx.tokenizer;
  if (tok) {
    input.counts = {
      prompt: tok.count(input.rendered.prompt) + (tok.bosId === null ? 0 : 1),
      response: input.promptOnly ? 0 : tok.count(input.rendered.response) + (tok.eosId === null ? 0 : 1),
    };
  }
  return input;
}
