import type { LineRule } from '../rule';

/**
 * jsonl/too-long: prompt + response tokens (the config model's tokenizer) over max_length — training drops the
 * record; in a test split, a prompt alone over max_length — evaluation skips it.
 */
export const tooLong: LineRule = {
  id: 'too-long',
  scope: 'line',
  codes: ['jsonl/too-long'],
  check(input, ctx, report) {
    const c = input.counts;
    if (!c || ctx.maxLength === null) return;
    const n = (x: number): string => x.toLocaleString('en-US');
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
