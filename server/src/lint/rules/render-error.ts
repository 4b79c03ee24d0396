import type { LineRule } from '../rule';

/** jsonl/render-error: the template fails on this record (a Jinja runtime error). */
export const renderError: LineRule = {
  id: 'render-error',
  scope: 'line',
  codes: ['jsonl/render-error'],
  check(input, _ctx, report) {
    if (input.renderError === null) return;
    report({ start: 0, end: input.text.trimEnd().length, severity: 'error', code: 'jsonl/render-error', message: `the template fails on this record: ${input.renderError}` });
  },
};
