import type { TemplateRule } from './types';

/**
 * template/yaml, unknown-key, syntax (Jinja, at the error's tag), missing-prompt, missing-response, bad-stop:
 * the problems found while loading the template.
 */
export const templateParse: TemplateRule = {
  id: 'template-parse',
  codes: ['template/yaml', 'template/unknown-key', 'template/syntax', 'template/missing-prompt', 'template/missing-response', 'template/bad-stop'],
  check({ template, index }, report) {
    for (const p of template.problems) {
      const severity = p.code === 'template/unknown-key' ? 'warning' : 'error';
      report({ range: index.span(p.start, p.end), severity, code: p.code, message: p.message });
    }
  },
};
