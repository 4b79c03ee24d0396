import type { LineRule } from '../rule';
import type { DatasetContext } from '../jsonl/dataset-config';

/**
 * jsonl/whitespace (hint): leading or trailing whitespace in a field the template uses, or in a chat record's
 * assistant text (the model learns to write it: it is inside the trained span); fix: trim it.
 */
export const whitespace: LineRule = {
  id: 'whitespace',
  scope: 'line',
  codes: ['jsonl/whitespace'],
  check(input, ctx, report) {
    const record = input.record;
    if (!record) return;
    const nested = !!ctx.chat;
    for (const [name, value] of checkedFields(record, ctx)) {
      if (typeof value !== 'string' || value === '' || !(/^\s/.test(value) || /\s$/.test(value))) continue;
      const span = nested ? input.paths().get(name) : input.fields().get(name);
      if (!span) continue;
      const where = /^\s/.test(value) && /\s$/.test(value) ? 'leading and trailing' : /^\s/.test(value) ? 'leading' : 'trailing';
      report({
        start: span.valueStart,
        end: span.valueEnd,
        severity: 'hint',
        code: 'jsonl/whitespace',
        message: `field "${name}" has ${where} whitespace`,
        fix: { title: `Trim field "${name}"`, edits: [{ start: span.valueStart, end: span.valueEnd, newText: JSON.stringify(value.trim()) }] },
      });
    }
  },
};

/** [field path, value] of the texts checked: the template's variables, a chat record's assistant texts, or all. */
function checkedFields(record: Record<string, unknown>, ctx: DatasetContext): [string, unknown][] {
  const format = ctx.chat?.format;
  if (format === 'alpaca') return [['output', record.output]];
  if (format === 'messages' || format === 'sharegpt') {
    const [list, roleKey, key, assistant] = format === 'messages' ? ['messages', 'role', 'content', ['assistant']] : ['conversations', 'from', 'value', ['gpt', 'assistant']];
    const turns = record[list];
    const out: [string, unknown][] = [];
    if (Array.isArray(turns)) {
      turns.forEach((t, i) => {
        const turn = typeof t === 'object' && t !== null ? (t as Record<string, unknown>) : {};
        if (assistant.includes(turn[roleKey] as string)) out.push([`${list}[${i}].${key}`, turn[key]]);
      });
    }
    return out;
  }
  const names = ctx.variables ? ctx.variables.map((v) => v.name) : Object.keys(record);
  return names.map((n) => [n, record[n]]);
}
