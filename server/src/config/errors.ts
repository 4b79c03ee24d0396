/** A problem in a fine-tune config, located precisely enough for an editor squiggle or a `file:line:col` jump. */
import * as path from 'node:path';

export class ConfigError {
  constructor(
    /** Absolute path of the config file; null for a command-line override. */
    readonly file: string | null,
    /** 1-based; 0 when the problem has no position (unreadable file). */
    readonly line: number,
    /** 1-based; 0 when the problem has no position. */
    readonly column: number,
    /** Dotted config path (`train.learning_rate`, `lora.target_modules[1]`); '' for the document itself. */
    readonly field: string,
    readonly message: string,
    /** The command-line flag the value came from (`--max-steps`), for overrides. */
    readonly flag: string | null = null,
  ) {}

  /** `finetune.yaml:14:18 train.learning_rate: must be > 0 (got -0.001)`; paths under `cwd` are shown relative. */
  format(cwd: string = process.cwd()): string {
    let where: string;
    if (this.flag) where = this.flag;
    else if (this.file) where = displayPath(this.file, cwd) + (this.line > 0 ? `:${this.line}:${this.column}` : '');
    else where = '<config>';
    return this.field ? `${where} ${this.field}: ${this.message}` : `${where}: ${this.message}`;
  }

  toJSON(): Record<string, unknown> {
    return { file: this.file, line: this.line, column: this.column, field: this.field, message: this.message, flag: this.flag };
  }
}

export function displayPath(file: string, cwd: string = process.cwd()): string {
  const relative = path.relative(cwd, file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

/** A value as shown in "(got …)": JSON, cut short. */
export function showValue(value: unknown): string {
  let text: string;
  if (value === undefined) text = 'nothing';
  else if (typeof value === 'object' && value !== null) text = Array.isArray(value) ? `a list ${JSON.stringify(value)}` : `a mapping ${JSON.stringify(value)}`;
  else text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Dotted field name from path segments: ['lora', 'target_modules', 1] -> lora.target_modules[1]. */
export function fieldName(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out ? `.${s}` : s;
  }
  return out;
}
