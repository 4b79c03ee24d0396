import type { FileRule } from '../rule';
import { span } from '../types';

/**
 * jsonl/tokenizer-unavailable: the config's tokenizer cannot be loaded (token lengths skipped, once per file);
 * jsonl/config-error: the config naming this file has errors, so template and token checks are skipped;
 * jsonl/no-chat-template: chat data without a chat template (turns are checked, not rendered or counted).
 */
export const contextProblems: FileRule = {
  id: 'context-problems',
  scope: 'file',
  codes: ['jsonl/tokenizer-unavailable', 'jsonl/config-error', 'jsonl/no-chat-template'],
  check(input, ctx, report) {
    const range = span(0, 0, input.lineCount > 0 ? input.lineLength(0) : 0);
    if (ctx.configProblem) report({ range, severity: 'information', code: 'jsonl/config-error', message: ctx.configProblem });
    if (ctx.chat?.problem) {
      report({ range, severity: 'warning', code: 'jsonl/no-chat-template', message: `conversations not rendered, token lengths not checked: ${ctx.chat.problem}` });
    }
    if (ctx.tokenizerProblem) {
      report({ range, severity: 'warning', code: 'jsonl/tokenizer-unavailable', message: `token lengths not checked: ${ctx.tokenizerProblem}` });
    }
  },
};
