import type { FileRule } from '../rule';
import { span } from '../types';

/**
 * jsonl/duplicate: a record whose rendered prompt (a chat record's: the text before its last assistant turn;
 * identical line, without a template) came earlier; fix: remove it.
 */
export const duplicate: FileRule = {
  id: 'duplicate',
  scope: 'file',
  codes: ['jsonl/duplicate'],
  memo: (f) => f.key,
  *check(input, ctx, report) {
    const first = new Map<string, number>();
    const what = ctx.template || ctx.chat?.template ? 'same rendered prompt as' : 'identical to';
    for (let line = 0; line < input.facts.length; line++) {
      const f = input.facts[line]!;
      if ((line & 2047) === 2047) yield;
      if (f.key === null) continue;
      const earlier = first.get(f.key);
      if (earlier === undefined) {
        first.set(f.key, line);
        continue;
      }
      const isLast = line === input.lineCount - 1 && !input.finalNewline;
      const removal = isLast && line > 0 ? span(line - 1, input.lineLength(line - 1), input.lineLength(line), line) : span(line, 0, 0, line + 1);
      report({
        range: span(line, 0, input.lineLength(line)),
        severity: 'warning',
        code: 'jsonl/duplicate',
        message: `duplicate record: ${what} line ${earlier + 1}`,
        related: input.file ? [{ file: input.file, range: span(earlier, 0, input.lineLength(earlier)), message: 'first occurrence' }] : undefined,
        fixes: [{ title: `Remove duplicate line ${line + 1}`, edits: [{ range: removal, newText: '' }] }],
      });
    }
  },
};
