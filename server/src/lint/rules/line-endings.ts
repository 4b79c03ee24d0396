import type { FileRule } from '../rule';
import { span } from '../types';

/** jsonl/mixed-line-endings: CRLF and LF in one file; fix: convert the minority to the majority. */
export const lineEndings: FileRule = {
  id: 'line-endings',
  scope: 'file',
  codes: ['jsonl/mixed-line-endings'],
  check(input, _ctx, report) {
    const { crlfLines, lfLines } = input;
    if (crlfLines.length > 0 && lfLines.length > 0) {
      const toLf = lfLines.length >= crlfLines.length;
      const minority = toLf ? crlfLines : lfLines;
      const first = minority[0]!;
      report({
        range: span(first, input.lineLength(first), input.lineLength(first)),
        severity: 'warning',
        code: 'jsonl/mixed-line-endings',
        message: `mixed line endings: ${crlfLines.length} CRLF and ${lfLines.length} LF; ${minority.length} line(s) use ${toLf ? 'CRLF' : 'LF'}`,
        fixes: [
          {
            title: `Normalize line endings to ${toLf ? 'LF' : 'CRLF'}`,
            edits: minority.map((line) => ({ range: span(line, input.lineLength(line), 0, line + 1), newText: toLf ? '\n' : '\r\n' })),
          },
        ],
      });
    } else if (input.diskMixedLineEndings) {
      report({
        range: span(0, 0, 0),
        severity: 'warning',
        code: 'jsonl/mixed-line-endings',
        message: 'the file on disk mixes CRLF and LF line endings (the text here does not): save the file to write one kind',
      });
    }
  },
};
