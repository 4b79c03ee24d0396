/**
 * What an evaluation reads before it asks the engine for anything: the split's JSONL records (with their line
 * numbers), the template's prompt and response variables, and the reference texts of every record. Every known
 * problem is an EvalInputError naming the file, the 1-based line and the field, so the CLI can exit 2 with
 * `test.jsonl:7 dialogue: …` and the editor can put a squiggle there.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTemplate, type PromptTemplate } from '../templates/template';

export class EvalInputError extends Error {
  override readonly name = 'EvalInputError';
  constructor(
    message: string,
    /** The file at fault (data split, template, config, adapter folder); null when it is a command-line value. */
    readonly file: string | null,
    /** 1-based; 0 when the problem is the file as a whole. */
    readonly line: number,
    /** The record field, config field or command-line flag. */
    readonly field: string | null = null,
  ) {
    super(message);
  }

  toJSON(): Record<string, unknown> {
    return { message: this.message, file: this.file, line: this.line, field: this.field };
  }
}

export interface DataRecord {
  /** 1-based line in the file. */
  line: number;
  fields: Record<string, unknown>;
}

/** Every JSON object line of a JSONL file (blank lines skipped); the first bad line is an EvalInputError. */
export function readRecords(file: string, configField: string): DataRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new EvalInputError(`cannot read ${file} (${configField}): ${why}`, file, 0, configField);
  }
  const records: DataRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(i === 0 ? line.replace(/^\uFEFF/, '') : line);
    } catch (error) {
      throw new EvalInputError(`invalid JSON: ${(error as Error).message}`, file, i + 1);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new EvalInputError('expected a JSON object ({"field": ...}) on each line', file, i + 1);
    }
    records.push({ line: i + 1, fields: value as Record<string, unknown> });
  }
  return records;
}

export interface TemplateInfo {
  template: PromptTemplate & { prompt: NonNullable<PromptTemplate['prompt']> };
  /** Variables the prompt needs in every record (not `is defined`-guarded). */
  promptVariables: string[];
  /** Every variable of the response part. */
  responseVariables: string[];
}

/** The template, parsed and checked; a syntax problem is an EvalInputError at its line. */
export function loadTemplateInfo(file: string): TemplateInfo {
  const template = readTemplate(file);
  if (!template) throw new EvalInputError(`cannot read the template ${file}`, file, 0, 'template');
  const problem = template.problems.find((p) => p.code !== 'template/missing-response');
  if (problem) throw new EvalInputError(problem.message, file, lineOf(template.text, problem.start), 'template');
  const prompt = template.prompt;
  if (!prompt?.compiled.ok) throw new EvalInputError('the template has no usable `prompt` part', file, 1, 'prompt');
  const response = template.response?.compiled.ok ? template.response.compiled.variables.map((v) => v.name) : [];
  return {
    template: template as TemplateInfo['template'],
    promptVariables: prompt.compiled.variables.filter((v) => !v.optional).map((v) => v.name),
    responseVariables: [...new Set(response)],
  };
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Each record must give every prompt variable a non-null value (what the engine's generate request checks). */
export function checkPromptFields(records: readonly DataRecord[], info: TemplateInfo, file: string): void {
  const name = path.basename(info.template.file);
  for (const record of records) {
    for (const variable of info.promptVariables) {
      const value = record.fields[variable];
      if (value !== undefined && value !== null) continue;
      const has = Object.keys(record.fields).sort().join(', ') || 'no fields';
      const state = value === null ? 'is null' : 'is missing';
      throw new EvalInputError(`field '${variable}' used by the prompt of ${name} ${state} (record has: ${has})`, file, record.line, variable);
    }
  }
}

/**
 * The record fields holding reference texts — the same rule as the engine's (engine/qlora_engine/rouge.py):
 * `eval.references` when set (every name required in every record); otherwise the response's one variable (when
 * any record has it) and its numbered variants found in the records (summary1, summary2, …), of which each record
 * needs one.
 */
export function referenceFields(
  explicit: readonly string[] | null,
  info: TemplateInfo,
  records: readonly DataRecord[],
): { names: string[]; explicit: boolean } {
  if (explicit && explicit.length > 0) return { names: [...explicit], explicit: true };
  const variables = [...info.responseVariables].sort();
  if (variables.length !== 1) {
    const found = variables.length ? variables.join(', ') : 'no variable';
    throw new EvalInputError(
      `cannot tell which record fields are the references: the response of ${path.basename(info.template.file)} uses ${found}; name them in eval.references (e.g. [summary1, summary2])`,
      null,
      0,
      'eval.references',
    );
  }
  const name = variables[0]!;
  const numbered = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([0-9]+)$`);
  const variants = new Map<string, number>();
  for (const record of records) {
    for (const key of Object.keys(record.fields)) {
      const match = numbered.exec(key);
      if (match) variants.set(key, Number(match[1]));
    }
  }
  const ordered = [...variants].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([key]) => key);
  const plain = records.some((r) => name in r.fields) || ordered.length === 0;
  return { names: plain ? [name, ...ordered] : ordered, explicit: false };
}

/** The reference texts of each record, in field order; a record without any is an EvalInputError. */
export function referencesOf(records: readonly DataRecord[], names: readonly string[], explicit: boolean, file: string): string[][] {
  return records.map((record) => {
    const texts: string[] = [];
    for (const name of names) {
      const value = record.fields[name];
      if (value === undefined || value === null) {
        if (explicit) {
          const state = value === null ? 'null' : 'missing';
          throw new EvalInputError(`reference field '${name}' (eval.references) is ${state}`, file, record.line, name);
        }
        continue;
      }
      if (typeof value !== 'string') {
        throw new EvalInputError(`reference field '${name}' must be a string, not ${Array.isArray(value) ? 'an array' : typeof value}`, file, record.line, name);
      }
      texts.push(value);
    }
    if (texts.length === 0) {
      throw new EvalInputError(`no reference text: none of ${names.join(', ')} is set; name the reference fields in eval.references`, file, record.line, names[0]!);
    }
    return texts;
  });
}
