/**
 * finetune.yaml -> ResolvedConfig: parse (keeping positions), validate against the JSON Schema with defaults,
 * resolve paths relative to the config's folder and check they exist, then apply command-line overrides
 * (validated too). Errors are values: every problem found, each with file, line, column and field.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { ResolvedConfig } from '../../../protocol/config';
import { expandHome } from '../engine-client/python';
import { ConfigError, fieldName } from './errors';
import { resolveDataFormat } from './format';
import { fieldSegments, YamlPositions } from './positions';
import { validateAgainstSchema, type SchemaProblem } from './validate';

export type LoadResult = { ok: true; config: ResolvedConfig; file: string } | { ok: false; errors: ConfigError[] };

/** A value set on the command line (`--max-steps 5` -> train.max_steps = 5), applied after validation. */
export interface ConfigOverride {
  field: string;
  value: unknown;
  flag: string;
}

export interface LoadOptions {
  overrides?: readonly ConfigOverride[];
  env?: NodeJS.ProcessEnv;
}

export function loadConfig(file: string, options: LoadOptions = {}): LoadResult {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    return { ok: false, errors: [new ConfigError(absolute, 0, 0, '', `cannot read the config: ${reason}`)] };
  }
  return loadConfigText(text, absolute, options);
}

/** As loadConfig, for text not (yet) on disk — an editor buffer; paths resolve against `file`'s folder. */
export function loadConfigText(text: string, file: string, options: LoadOptions = {}): LoadResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const errors = doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return new ConfigError(file, pos.line, pos.col, '', `YAML: ${e.message.split('\n')[0]}`);
    });
    return { ok: false, errors };
  }
  const positions = new YamlPositions(doc, lines);
  const data: unknown = doc.toJS();
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    const pos = positions.nearest([]);
    const message = 'the config must be a mapping with at least model and data (and template, unless the data is a chat format)';
    return { ok: false, errors: [new ConfigError(file, pos.line, pos.column, '', message)] };
  }

  const problems = validateAgainstSchema(data);
  if (problems.length > 0) {
    return { ok: false, errors: sortErrors(problems.map((p) => locate(p, file, positions))) };
  }
  const config = data as ResolvedConfig;
  const pathErrors = resolvePaths(config, path.dirname(file), positions, file, options.env ?? process.env);
  if (pathErrors.length > 0) return { ok: false, errors: pathErrors };
  return applyOverrides(config, options.overrides ?? [], file);
}

/**
 * Where a dotted field is written in a config file (for engine errors that name a config field but no file:
 * "lora.target_modules: 'x' is not a linear layer"), or null when the file does not set it.
 */
export function locateConfigField(file: string, field: string): { line: number; column: number } | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const segments = fieldSegments(field);
  return segments.length ? new YamlPositions(doc, lines).valueAt(segments) : null;
}

/** Sets each override on a copy of a valid config and validates the result; errors name the flag. */
export function applyOverrides(config: ResolvedConfig, overrides: readonly ConfigOverride[], file: string): LoadResult {
  if (overrides.length === 0) return { ok: true, config, file };
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const o of overrides) setPath(copy, o.field.split('.'), o.value);
  const problems = validateAgainstSchema(copy);
  if (problems.length > 0) {
    const errors = problems.map((p) => {
      const field = fieldName(p.segments);
      const flag = overrides.find((o) => field === o.field || field.startsWith(`${o.field}.`))?.flag ?? overrides[0]!.flag;
      return new ConfigError(null, 0, 0, field, p.message, flag);
    });
    return { ok: false, errors };
  }
  return { ok: true, config: copy as unknown as ResolvedConfig, file };
}

/**
 * Parses a command-line value for a numeric field: numbers become numbers, anything else stays a string so
 * the schema reports it ("must be an integer (got "ten")").
 */
export function parseOverrideNumber(raw: string): number | string {
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
}

function locate(problem: SchemaProblem, file: string, positions: YamlPositions): ConfigError {
  const field = fieldName(problem.segments);
  let pos;
  if (problem.kind === 'unknown-key') {
    pos = positions.keyAt(problem.segments.slice(0, -1), String(problem.segments.at(-1)));
  } else if (problem.kind === 'missing-key') {
    pos = positions.valueAt(problem.segments.slice(0, -1));
  } else {
    pos = positions.valueAt(problem.segments);
  }
  pos ??= positions.nearest(problem.segments);
  return new ConfigError(file, pos.line, pos.column, field, problem.message);
}

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** `model` names a local folder (not a hub id) when it looks like a path. */
export function isPathLike(value: string): boolean {
  return (
    value === '.' ||
    value === '..' ||
    /^(\.{1,2}[\\/]|[\\/]|~)/.test(value) ||
    /^[A-Za-z]:[\\/]/.test(value) // C:\models\phi-2
  );
}

function resolvePaths(
  config: ResolvedConfig,
  dir: string,
  positions: YamlPositions,
  file: string,
  env: NodeJS.ProcessEnv,
): ConfigError[] {
  const errors: ConfigError[] = [];
  const resolve = (value: string): string => path.resolve(dir, expandHome(value, env));
  const fail = (segments: string[], message: string): void => {
    const pos = positions.valueAt(segments) ?? positions.nearest(segments);
    errors.push(new ConfigError(file, pos.line, pos.column, fieldName(segments), message));
  };
  const needFile = (segments: string[], value: string): string => {
    const full = resolve(value);
    const kind = statKind(full);
    if (kind === null) fail(segments, `file not found: ${full}`);
    else if (kind !== 'file') fail(segments, `is a folder, not a file: ${full}`);
    return full;
  };

  const model = config.model;
  const local = resolve(model);
  if (isPathLike(model)) {
    const kind = statKind(local);
    if (kind === null) fail(['model'], `model folder not found: ${local} (a hub id looks like microsoft/phi-2)`);
    else if (kind !== 'dir') fail(['model'], `must be a model folder, not a file: ${local}`);
    config.model = local;
  } else if (statKind(local) === 'dir') {
    config.model = local;
  }

  config.data.train = needFile(['data', 'train'], config.data.train);
  if (config.data.validation !== null) config.data.validation = needFile(['data', 'validation'], config.data.validation);
  if (config.data.test !== null) config.data.test = needFile(['data', 'test'], config.data.test);
  if (config.template !== null) config.template = needFile(['template'], config.template);
  if (config.chat_template !== null) config.chat_template = needFile(['chat_template'], config.chat_template);
  if (errors.length === 0) {
    const resolved = resolveDataFormat(config);
    if ('problem' in resolved) fail(resolved.problem.segments, resolved.problem.message);
    else config.data.format = resolved.format;
  }
  return sortErrors(errors);
}

function statKind(file: string): 'file' | 'dir' | 'other' | null {
  try {
    const stat = fs.statSync(file);
    return stat.isFile() ? 'file' : stat.isDirectory() ? 'dir' : 'other';
  } catch {
    return null;
  }
}

function setPath(target: Record<string, unknown>, keys: string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1)!] = value;
}
