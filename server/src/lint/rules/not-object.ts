import type { LineRule } from '../rule';

/** jsonl/not-object: valid JSON that is not an object ({"field": ...}), so it has no fields to render. */
export const notObject: LineRule = {
  id: 'not-object',
  scope: 'line',
  codes: ['jsonl/not-object'],
  check(input, _ctx, report) {
    if (!input.parsed || input.record) return;
    const v = input.value;
    const kind = Array.isArray(v) ? 'a list' : v === null ? 'null' : `a ${typeof v}`;
    const start = input.text.length - input.text.trimStart().length;
    report({ start, end: input.text.trimEnd().length, severity: 'error', code: 'jsonl/not-object', message: `each line must be a JSON object with the template's fields; this one is ${kind}` });
  },
};
