import * as path from 'node:path';
import type { FileRule } from '../rule';
import { span } from '../types';

/**
 * jsonl/leakage: the same rendered prompt (a chat record's: the text before its last assistant turn) in train and
 * in validation/test — evaluation would reward memorizing.
 */
export const leakage: FileRule = {
  id: 'leakage',
  scope: 'file',
  codes: ['jsonl/leakage'],
  memo: (f) => f.key,
  *check(input, ctx, report) {
    if (ctx.others.length === 0) return;
    for (let line = 0; line < input.facts.length; line++) {
      const f = input.facts[line]!;
      if ((line & 2047) === 2047) yield;
      if (f.key === null || f.kind !== 'record') continue;
      for (const other of ctx.others) {
        const at = other.prompts.get(f.key);
        if (at === undefined) continue;
        report({
          range: span(line, 0, input.lineLength(line)),
          severity: 'warning',
          code: 'jsonl/leakage',
          message: `leakage: the same prompt is in the ${other.role} split (${path.basename(other.file)} line ${at + 1}); evaluation would measure memorization`,
          related: [{ file: other.file, range: span(at, 0, 0), message: `same prompt in ${other.role}` }],
        });
        break;
      }
    }
  },
};
