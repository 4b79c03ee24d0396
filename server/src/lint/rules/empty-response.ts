import type { LineRule } from '../rule';

/** jsonl/empty-response: the rendered response is empty or whitespace, so the record teaches nothing. */
export const emptyResponse: LineRule = {
  id: 'empty-response',
  scope: 'line',
  codes: ['jsonl/empty-response'],
  check(input, ctx, report) {
    if (!input.rendered || input.promptOnly || input.rendered.response.trim() !== '') return;
    const fields = ctx.template?.response?.compiled.ok ? ctx.template.response.compiled.variables.map((v) => v.name) : [];
    const span = fields.map((f) => input.fields().get(f)).find((s) => s !== undefined);
    const at = span ? { start: span.valueStart, end: span.valueEnd } : { start: 0, end: input.text.trimEnd().length };
    report({ ...at, severity: 'error', code: 'jsonl/empty-response', message: 'the rendered response is empty: this record trains nothing' });
  },
};
