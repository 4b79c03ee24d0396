import { FORMAT_FIELDS } from '../../templates/chat-turns';
import type { FileRule } from '../rule';
import { span } from '../types';

/** jsonl/unused-fields (information, once per file): fields no template variable (or the chat format) reads. */
export const unusedFields: FileRule = {
  id: 'unused-fields',
  scope: 'file',
  codes: ['jsonl/unused-fields'],
  memo: (f) => f.keySignature,
  *check(input, ctx, report) {
    const chat = ctx.chat?.format;
    if (!ctx.variables && !chat) return;
    const used = new Set(chat ? FORMAT_FIELDS[chat] : ctx.variables!.map((v) => v.name));
    const unused: string[] = [];
    let firstLine = -1;
    const seen = new Set<string>();
    for (let line = 0; line < input.facts.length; line++) {
      const f = input.facts[line]!;
      if ((line & 2047) === 2047) yield;
      if (f.keySignature === null || seen.has(f.keySignature)) continue;
      seen.add(f.keySignature);
      for (const k of f.keys ?? []) {
        if (used.has(k) || unused.includes(k)) continue;
        unused.push(k);
        if (firstLine < 0) firstLine = line;
      }
    }
    if (unused.length === 0) return;
    const list = unused.map((k) => `"${k}"`).join(', ');
    report({
      range: span(firstLine, 0, input.lineLength(firstLine)),
      severity: 'information',
      code: 'jsonl/unused-fields',
      message: `the ${chat ? `${chat} format` : 'template'} never ${chat ? 'reads' : 'uses'} ${unused.length === 1 ? 'field' : 'fields'} ${list} (used: ${[...used].join(', ')})`,
    });
  },
};
