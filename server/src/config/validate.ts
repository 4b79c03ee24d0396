/**
 * Validation against schemas/finetune.schema.json (bundled into the build): defaults filled in place, every
 * error reported (not just the first), each turned into a path + a message a user can act on.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import schema from '../../../schemas/finetune.schema.json';
import { showValue } from './errors';

export interface SchemaProblem {
  /** Path of the offending value (for a missing or unknown key: of the key itself). */
  segments: (string | number)[];
  /** The problem is a key: locate the key (unknown) or the parent mapping (missing). */
  kind: 'value' | 'unknown-key' | 'missing-key';
  message: string;
}

let compiled: ValidateFunction | null = null;
function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ useDefaults: true, allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    compiled = ajv.compile(schema);
  }
  return compiled;
}

/** Validates `data` in place (defaults are inserted) and returns the problems, ordered as found. */
export function validateAgainstSchema(data: unknown): SchemaProblem[] {
  const validate = validator();
  if (validate(data)) return [];
  const problems: SchemaProblem[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    const problem = toProblem(error, data);
    const key = `${problem.kind}:${problem.segments.join('\u0000')}:${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(problem);
  }
  return problems;
}

function toProblem(error: ErrorObject, root: unknown): SchemaProblem {
  const segments = pointerSegments(error.instancePath, root);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const suggestion = closest(key, allowed);
      const hint = suggestion ? `did you mean "${suggestion}"?` : `expected one of: ${allowed.join(', ')}`;
      return { segments: [...segments, key], kind: 'unknown-key', message: `unknown key "${key}"; ${hint}` };
    }
    case 'required': {
      const key = String(params.missingProperty);
      return { segments: [...segments, key], kind: 'missing-key', message: 'is required but missing' };
    }
    case 'type': {
      const types = Array.isArray(params.type) ? (params.type as string[]) : String(params.type).split(',');
      const autoOr = (error.parentSchema as { pattern?: string } | undefined)?.pattern === '^auto$';
      const words = autoOr ? ['"auto"', ...types.filter((t) => t !== 'string').map(typeWord)] : types.map(typeWord);
      return { segments, kind: 'value', message: `must be ${words.join(' or ')} (got ${showValue(error.data)})` };
    }
    case 'enum': {
      const values = (params.allowedValues as unknown[]).map((v) => String(v)).join(', ');
      return { segments, kind: 'value', message: `must be one of: ${values} (got ${showValue(error.data)})` };
    }
    case 'pattern': {
      // The only patterns are on "auto"-or-value fields: ["integer", "string"] + pattern "^auto$".
      const types = ((error.parentSchema as { type?: string | string[] } | undefined)?.type ?? []) as string[];
      const other = (Array.isArray(types) ? types : [types]).filter((t) => t !== 'string').map(typeWord);
      return { segments, kind: 'value', message: `must be "auto" or ${other.join(' or ') || 'a value'} (got ${showValue(error.data)})` };
    }
    case 'uniqueItems':
      return { segments, kind: 'value', message: `must not repeat items (items ${params.j} and ${params.i} are the same)` };
    default:
      return { segments, kind: 'value', message: `${error.message ?? 'is invalid'} (got ${showValue(error.data)})` };
  }
}

/** JSON pointer -> path segments; array indices become numbers so field names read `list[1]`. */
function pointerSegments(pointer: string, root: unknown): (string | number)[] {
  if (!pointer) return [];
  const segments: (string | number)[] = [];
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      segments.push(Number(key));
      node = node[Number(key)];
    } else {
      segments.push(key);
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return segments;
}

function typeWord(type: string): string {
  switch (type) {
    case 'integer':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'a mapping';
    case 'array':
      return 'a list';
    default:
      return type;
  }
}

/** The allowed key nearest to a misspelt one (edit distance <= 1/3 of its length), or null. */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}
