import type { LineRule } from '../rule';

/** jsonl/whitespace (hint): leading or trailing whitespace in a field the template uses; fix: trim it. */
export const whitespace: LineRule = {
  id: 'whitespace',
  scope: 'line',
  codes: ['jsonl/whitespace'],
  check(input, ctx, report) {
    const record = input.record;
    if (!record) return;
    const names = ctx.variables ? ctx.variables.map((v) => v.name) : Object.keys(record);
    for (const name of names) {
      const value = record[name];
      if (typeof value !== 'string' || value === '' || !(/^\s/.test(value) || /\s$/.test(value))) continue;
      const span = input.fields().get(name);
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
