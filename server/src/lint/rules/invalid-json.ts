import { jsonError } from '../jsonl/json';
import type { LineRule } from '../rule';

/** jsonl/invalid-json: a line that is not JSON, marked at the character where parsing fails. */
export const invalidJson: LineRule = {
  id: 'invalid-json',
  scope: 'line',
  codes: ['jsonl/invalid-json'],
  check(input, _ctx, report) {
    if (input.parsed || input.text.trim() === '') return;
    const error = jsonError(input.text) ?? { offset: 0, message: 'not valid JSON' };
    const start = Math.min(error.offset, Math.max(0, input.text.length - 1));
    report({ start, end: Math.min(start + 1, input.text.length), severity: 'error', code: 'jsonl/invalid-json', message: `invalid JSON: ${error.message}` });
  },
};
