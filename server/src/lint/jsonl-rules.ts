/** Every JSONL rule, in reporting order. Template and config rules have their own lists (template.ts, config.ts). */
import type { FileRule, JsonlRule, LineRule } from './rule';
import { bom } from './rules/bom';
import { chatTurns } from './rules/chat-turns';
import { contextProblems } from './rules/context-problems';
import { duplicate } from './rules/duplicate';
import { emptyResponse } from './rules/empty-response';
import { invalidJson } from './rules/invalid-json';
import { invalidUtf8 } from './rules/invalid-utf8';
import { leakage } from './rules/leakage';
import { lineEndings } from './rules/line-endings';
import { notObject } from './rules/not-object';
import { renderError } from './rules/render-error';
import { templateFields } from './rules/template-fields';
import { tooLong } from './rules/too-long';
import { unusedFields } from './rules/unused-fields';
import { whitespace } from './rules/whitespace';

export const jsonlRules: readonly JsonlRule[] = [
  invalidJson,
  notObject,
  templateFields,
  chatTurns,
  renderError,
  emptyResponse,
  tooLong,
  whitespace,
  duplicate,
  leakage,
  unusedFields,
  lineEndings,
  bom,
  invalidUtf8,
  contextProblems,
];

export const lineRules = jsonlRules.filter((r): r is LineRule => r.scope === 'line');
export const fileRules = jsonlRules.filter((r): r is FileRule => r.scope === 'file');
