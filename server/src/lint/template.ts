/** Lints a prompt template file: its own problems, then the rules that need its config's datasets and model. */
import { parseTemplate } from '../templates/template';
import { endMarker } from './template-rules/end-marker';
import { templateParse } from './template-rules/parse';
import { noSeparator } from './template-rules/separator';
import type { TemplateLintInput, TemplateRule } from './template-rules/types';
import { unknownVariable } from './template-rules/unknown-variable';
import { LineIndex, span, type LintDiagnostic } from './types';

export const templateRules: readonly TemplateRule[] = [templateParse, unknownVariable, noSeparator, endMarker];

export interface TemplateLintOptions {
  fields: TemplateLintInput['fields'];
  eosToken: string | null | undefined;
  log: (message: string) => void;
}

export function lintTemplate(text: string, file: string, options: TemplateLintOptions): LintDiagnostic[] {
  const template = parseTemplate(text, file);
  const input: TemplateLintInput = { template, index: new LineIndex(text), fields: options.fields, eosToken: options.eosToken };
  const out: LintDiagnostic[] = [];
  for (const rule of templateRules) {
    try {
      rule.check(input, (d) => out.push(d));
    } catch (error) {
      options.log(`template rule ${rule.id} crashed: ${(error as Error).stack ?? String(error)}`);
      out.push({ range: span(0, 0, 0), severity: 'error', code: 'lint/internal', message: `internal error in lint rule ${rule.id}: ${(error as Error).message} (see the log)` });
    }
  }
  return out.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
}
