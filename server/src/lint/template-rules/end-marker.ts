import type { TemplateRule } from './types';
import { literalText } from './text';

/**
 * template/stop-not-in-response: a `stop` marker the response never contains (the model never learns to emit
 * it); template/no-end: nothing ends the response — the tokenizer has no EOS and there is no `stop` marker.
 */
export const endMarker: TemplateRule = {
  id: 'end-marker',
  codes: ['template/stop-not-in-response', 'template/no-end'],
  check({ template, index, eosToken }, report) {
    const response = template.response;
    if (!response?.compiled.ok) return;
    const literal = literalText(response.compiled.template);
    const at = index.span(response.keyStart, response.keyEnd);
    for (const stop of template.stop) {
      if (literal.includes(stop)) continue;
      report({
        range: at,
        severity: 'warning',
        code: 'template/stop-not-in-response',
        message: `the stop marker ${JSON.stringify(stop)} never appears in the response, so the model never learns to write it: end the response with it (e.g. ${JSON.stringify(`{{ summary }}\n${stop}`)}) or remove it from \`stop\``,
      });
    }
    if (eosToken === null && template.stop.length === 0) {
      report({
        range: at,
        severity: 'warning',
        code: 'template/no-end',
        message: "nothing ends the response: the model's tokenizer has no EOS token and the template has no `stop` marker; generation would run to the token limit",
      });
    }
  },
};
