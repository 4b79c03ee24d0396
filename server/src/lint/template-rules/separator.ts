import type { TemplateRule } from './types';
import { leadingText, trailingText } from './text';

/**
 * template/no-separator: the prompt ends with a variable (or only whitespace after it) and the response starts
 * with one, so nothing marks where the model's answer begins; at inference it cannot know when to start.
 */
export const noSeparator: TemplateRule = {
  id: 'no-separator',
  codes: ['template/no-separator'],
  check({ template, index }, report) {
    const prompt = template.prompt;
    const response = template.response;
    if (!prompt?.compiled.ok || !response?.compiled.ok) return;
    const end = trailingText(prompt.compiled.template);
    const start = leadingText(response.compiled.template);
    if (end.trim() !== '' || start.trim() !== '') return;
    report({
      range: index.span(prompt.keyStart, prompt.keyEnd),
      severity: 'warning',
      code: 'template/no-separator',
      message: 'nothing separates the prompt from the response: end the prompt with a fixed marker (e.g. "\\nOutput:\\n") so the model learns where its answer starts',
    });
  },
};
