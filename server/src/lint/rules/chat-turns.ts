import type { ChatProblemKind } from '../../templates/chat';
import type { FieldSpan } from '../jsonl/json';
import type { LineRule } from '../rule';
import type { LineDiag } from '../types';

const CODES: Record<ChatProblemKind, string> = {
  structure: 'jsonl/chat-structure',
  'unknown-role': 'jsonl/unknown-role',
  'empty-turn': 'jsonl/empty-turn',
  order: 'jsonl/turn-order',
  'no-assistant-end': 'jsonl/no-assistant-end',
};

/** Role names other tools write for the same speaker: the fix is unambiguous for these only. */
const ALIASES: Record<'messages' | 'sharegpt', Record<string, string>> = {
  messages: { human: 'user', gpt: 'assistant', bot: 'assistant', model: 'assistant' },
  sharegpt: { bot: 'gpt', model: 'gpt', chatgpt: 'gpt' },
};
const KNOWN: Record<'messages' | 'sharegpt', string[]> = {
  messages: ['system', 'user', 'assistant'],
  sharegpt: ['system', 'human', 'user', 'gpt', 'assistant'],
};

/**
 * jsonl/chat-structure, unknown-role, empty-turn, turn-order, no-assistant-end: a chat record the engine refuses
 * (docs/chat-datasets.md, "What a conversation must be"), on the field at fault. Fix: a role written the way
 * another tool names the same speaker (`"Human"`, `"bot"`) renamed to the format's own.
 */
export const chatTurns: LineRule = {
  id: 'chat-turns',
  scope: 'line',
  codes: Object.values(CODES),
  check(input, ctx, report) {
    const chat = input.chat;
    if (!chat || !ctx.chat) return;
    const format = ctx.chat.format;
    for (const problem of chat.problems) {
      const span = spanOf(problem.field, input.paths()) ?? { valueStart: 0, valueEnd: input.text.trimEnd().length };
      const d: LineDiag = { start: span.valueStart, end: span.valueEnd, severity: 'error', code: CODES[problem.kind], message: problem.message };
      const value = lookup(input.record, problem.field);
      if (problem.kind === 'unknown-role' && format !== 'alpaca' && typeof value === 'string' && span === input.paths().get(problem.field)) {
        const to = KNOWN[format].find((r) => r === value.toLowerCase()) ?? ALIASES[format][value.toLowerCase()];
        if (to) d.fix = { title: `Rename role "${value}" to "${to}"`, edits: [{ start: span.valueStart, end: span.valueEnd, newText: JSON.stringify(to) }] };
      }
      report(d);
    }
  },
};

/** The span of a field path, or of the nearest enclosing one that is written (`messages[1].content` -> `messages[1]`). */
function spanOf(field: string, spans: Map<string, FieldSpan>): FieldSpan | null {
  for (let f = field; f !== ''; f = f.replace(/(\.[^.[\]]*|\[\d+\])$/, '')) {
    const span = spans.get(f);
    if (span) return span;
    if (!/[.[]/.test(f)) break;
  }
  return null;
}

/** The value at a field path of a record, or undefined. */
function lookup(record: Record<string, unknown> | null, field: string): unknown {
  let value: unknown = record;
  for (const part of field.match(/[^.[\]]+|\[\d+\]/g) ?? []) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = part.startsWith('[') ? (value as unknown[])[Number(part.slice(1, -1))] : (value as Record<string, unknown>)[part];
  }
  return value;
}
