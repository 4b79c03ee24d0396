import { closest } from '../../config/validate';
import { templateVariables } from '../../templates/template';
import type { TemplateRule } from './types';

/** template/unknown-variable: a variable that no record of the config's datasets has (with a did-you-mean). */
export const unknownVariable: TemplateRule = {
  id: 'unknown-variable',
  codes: ['template/unknown-variable'],
  check({ template, index, fields }, report) {
    if (!fields || fields.names.size === 0) return;
    const names = [...fields.names];
    for (const v of templateVariables(template)) {
      if (fields.names.has(v.name) || v.optional) continue;
      const guess = closest(v.name, names);
      report({
        range: index.span(v.start, v.end),
        severity: 'error',
        code: 'template/unknown-variable',
        message: `no record in ${fields.source} has a field "${v.name}"${guess ? ` — did you mean "${guess}"?` : ''} (fields: ${names.join(', ')})`,
      });
    }
  },
};
