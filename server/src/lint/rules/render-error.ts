import type { LineRule } from '../rule';

/** jsonl/render-error: the template fails on this record (a Jinja runtime error; for chat data, the chat template's). */
export const renderError: LineRule = {
  id: 'render-error',
  scope: 'line',
  codes: ['jsonl/render-error'],
  check(input, _ctx, report) {
    if (input.renderError === null) return;
    // A chat template's error already names the template file.
    const message = input.chat ? input.renderError : `the template fails on this record: ${input.renderError}`;
    report({ start: 0, end: input.text.trimEnd().length, severity: 'error', code: 'jsonl/render-error', message });
  },
};
