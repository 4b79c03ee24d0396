import type { LineRule } from '../rule';

/**
 * jsonl/too-long: prompt + response tokens (the config model's tokenizer) over max_length — training drops the
 * record; in a test split, a prompt alone over max_length — evaluation skips it. A chat record counts its whole
 * conversation (every segment tokenized on its own), and in a test split the prompt of its last assistant turn.
 */
export const tooLong: LineRule = {
  id: 'too-long',
  scope: 'line',
  codes: ['jsonl/too-long'],
  check(input, ctx, report) {
    const c = input.counts;
    if (!c || ctx.maxLength === null) return;
    const n = (x: number): string => x.toLocaleString('en-US');
    const chat = input.chat?.counts;
    if (chat) {
      const over = ctx.role === 'test' ? (chat.prompt ?? 0) > ctx.maxLength : chat.total > ctx.maxLength;
      if (!over) return;
      const turns = input.chat!.turns.length;
      const message =
        ctx.role === 'test'
          ? `the prompt is ${n(chat.prompt ?? 0)} tokens, over max_length ${n(ctx.maxLength)}: evaluation skips this record (qlora-studio eval lists it in the report)`
          : `${n(chat.total)} tokens (${turns} turns, ${n(chat.trained)} trained) exceed max_length ${n(ctx.maxLength)}: training drops this conversation`;
      report({ start: 0, end: input.text.trimEnd().length, severity: 'warning', code: 'jsonl/too-long', message });
      return;
    }
    if (ctx.role === 'test') {
      if (c.prompt <= ctx.maxLength) return;
      report({
        start: 0,
        end: input.text.trimEnd().length,
        severity: 'warning',
        code: 'jsonl/too-long',
        message: `the prompt is ${n(c.prompt)} tokens, over max_length ${n(ctx.maxLength)}: evaluation skips this record (qlora-studio eval lists it in the report)`,
      });
      return;
    }
    if (c.prompt + c.response <= ctx.maxLength) return;
    report({
      start: 0,
      end: input.text.trimEnd().length,
      severity: 'warning',
      code: 'jsonl/too-long',
      message: `${n(c.prompt + c.response)} tokens (prompt ${n(c.prompt)} + response ${n(c.response)}) exceed max_length ${n(ctx.maxLength)}: training drops this record`,
    });
  },
};
