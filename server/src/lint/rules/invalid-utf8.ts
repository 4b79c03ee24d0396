import type { FileRule } from '../rule';
import { span } from '../types';

/** jsonl/invalid-utf8: bytes that are not UTF-8 (the text shows U+FFFD there); one diagnostic per line. */
export const invalidUtf8: FileRule = {
  id: 'invalid-utf8',
  scope: 'file',
  codes: ['jsonl/invalid-utf8'],
  check(input, _ctx, report) {
    for (const { line, column } of input.invalidUtf8) {
      report({ range: span(line, column, column + 1), severity: 'error', code: 'jsonl/invalid-utf8', message: 'invalid UTF-8 bytes: the engine cannot read this line; re-save the file as UTF-8' });
    }
  },
};
