import type { LineRule } from '../rule';

/** jsonl/missing-field, null-field, empty-field, non-string-field: a field the template needs is unusable. */
export const templateFields: LineRule = {
  id: 'template-fields',
  scope: 'line',
  codes: ['jsonl/missing-field', 'jsonl/null-field', 'jsonl/empty-field', 'jsonl/non-string-field'],
  check(input, ctx, report) {
    const record = input.record;
    if (!record || input.badFields.length === 0) return;
    const template = ctx.template ? ` (the template uses {{ ${input.badFields[0]} }})` : '';
    for (const name of input.badFields) {
      const value = record[name];
      const span = input.fields().get(name);
      const at = span ? { start: span.valueStart, end: span.valueEnd } : { start: 0, end: input.text.trimEnd().length };
      if (!(name in record)) {
        const keys = Object.keys(record);
        report({ ...at, severity: 'error', code: 'jsonl/missing-field', message: `missing field "${name}"${template}; this record has ${keys.length ? keys.map((k) => `"${k}"`).join(', ') : 'no fields'}` });
      } else if (value === null) {
        report({ ...at, severity: 'error', code: 'jsonl/null-field', message: `field "${name}" is null; the template needs a string` });
      } else if (value === '') {
        report({ ...at, severity: 'error', code: 'jsonl/empty-field', message: `field "${name}" is empty; the template needs text here` });
      } else {
        const kind = Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
        report({ ...at, severity: 'error', code: 'jsonl/non-string-field', message: `field "${name}" is ${kind}, not a string (TypeScript and Python render non-strings differently)` });
      }
    }
  },
};
