import type { PromptTemplate } from '../../templates/template';
import type { LintDiagnostic } from '../types';
import type { LineIndex } from '../types';

export interface TemplateLintInput {
  template: PromptTemplate;
  index: LineIndex;
  /** Fields of the datasets of the configs that use this template (null: no config names it). */
  fields: { names: Set<string>; source: string } | null;
  /** The config model's EOS token: a string, null (the tokenizer has none), undefined (unknown). */
  eosToken: string | null | undefined;
}

export interface TemplateRule {
  id: string;
  codes: readonly string[];
  check(input: TemplateLintInput, report: (d: LintDiagnostic) => void): void;
}
