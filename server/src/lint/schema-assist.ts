/**
 * Completion and hover in fine-tune configs from the JSON Schema shipped in schemas/finetune.schema.json.
 * The YAML path at the cursor comes from indentation (block mappings) and the enclosing `{ … }` on the line
 * (flow mappings such as `lora: { r: 32, alpha: 32 }`), which covers how configs are written.
 */
import schemaJson from '../../../schemas/finetune.schema.json';

interface SchemaNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
}

const schema = schemaJson as SchemaNode;

export function schemaAt(segments: readonly string[]): SchemaNode | null {
  let node: SchemaNode | undefined = schema;
  for (const s of segments) {
    node = node?.properties?.[s];
    if (!node) return null;
  }
  return node;
}

export interface CursorContext {
  /** Path of the mapping the cursor is in. */
  parents: string[];
  mode: 'key' | 'value';
  /** For value mode: the key whose value is being typed. */
  key: string | null;
  /** Keys already present in that mapping. */
  siblings: string[];
}

const KEY_LINE = /^(\s*)([A-Za-z_][\w-]*)\s*:(.*)$/;

function indentOf(line: string): number {
  return /^ */.exec(line)![0].length;
}

/** Block-mapping parents of a line with the given indentation. */
function blockParents(lines: string[], line: number, indent: number): { parents: string[]; start: number } {
  const parents: string[] = [];
  let current = indent;
  let start = 0;
  for (let i = line - 1; i >= 0 && current > 0; i--) {
    const l = lines[i]!;
    if (l.trim() === '' || l.trimStart().startsWith('#')) continue;
    const m = KEY_LINE.exec(l);
    const ind = indentOf(l);
    if (ind < current && m) {
      parents.unshift(m[2]!);
      if (parents.length === 1) start = i + 1;
      current = ind;
    }
  }
  return { parents, start };
}

export function cursorContext(text: string, line: number, character: number): CursorContext {
  const lines = text.split('\n');
  const cur = lines[line] ?? '';
  const before = cur.slice(0, character);
  const open = before.lastIndexOf('{');
  if (open >= 0 && before.indexOf('}', open) < 0) {
    const lineKey = KEY_LINE.exec(cur);
    const { parents } = blockParents(lines, line, indentOf(cur));
    const segment = before.slice(Math.max(before.lastIndexOf(',') + 1, open + 1));
    const flowParents = lineKey ? [...parents, lineKey[2]!] : parents;
    const inside = cur.slice(open + 1, cur.indexOf('}', open) < 0 ? undefined : cur.indexOf('}', open));
    const siblings = [...inside.matchAll(/([A-Za-z_][\w-]*)\s*:/g)].map((m) => m[1]!);
    const kv = /^\s*([A-Za-z_][\w-]*)\s*:/.exec(segment);
    return kv ? { parents: flowParents, mode: 'value', key: kv[1]!, siblings } : { parents: flowParents, mode: 'key', key: null, siblings };
  }
  const indent = cur.trim() === '' ? character : indentOf(cur);
  const { parents, start } = blockParents(lines, line, indent);
  const siblings: string[] = [];
  for (let i = start; i < lines.length; i++) {
    const m = KEY_LINE.exec(lines[i]!);
    if (!m) continue;
    const ind = m[1]!.length;
    if (ind < indent && i > line) break;
    if (ind === indent && i !== line) siblings.push(m[2]!);
  }
  const kv = /^\s*([A-Za-z_][\w-]*)\s*:/.exec(before);
  return kv ? { parents, mode: 'value', key: kv[1]!, siblings } : { parents, mode: 'key', key: null, siblings };
}

export interface SchemaCompletion {
  label: string;
  kind: 'property' | 'value';
  detail: string;
  documentation: string;
  insertText: string;
}

export function configCompletions(text: string, line: number, character: number): SchemaCompletion[] {
  const ctx = cursorContext(text, line, character);
  if (ctx.mode === 'key') {
    const parent = schemaAt(ctx.parents);
    const flow = /\{[^}]*$/.test((text.split('\n')[line] ?? '').slice(0, character));
    return Object.entries(parent?.properties ?? {})
      .filter(([name]) => !ctx.siblings.includes(name))
      .map(([name, node]) => ({
        label: name,
        kind: 'property' as const,
        detail: typeLabel(node),
        documentation: describe(name, node),
        insertText: node.properties && !flow ? `${name}:\n  ` : `${name}: `,
      }));
  }
  const node = ctx.key ? schemaAt([...ctx.parents, ctx.key]) : null;
  if (!node) return [];
  const values = node.enum ?? (typeLabel(node) === 'boolean' ? [true, false] : []);
  return values.map((v) => ({ label: String(v), kind: 'value' as const, detail: typeLabel(node), documentation: describe(ctx.key!, node), insertText: String(v) }));
}

/** Markdown for the key (or the value's key) under the cursor, or null. */
export function configHover(text: string, line: number, character: number): string | null {
  const cur = text.split('\n')[line] ?? '';
  const word = /[A-Za-z_][\w-]*/g;
  for (let m = word.exec(cur); m !== null; m = word.exec(cur)) {
    if (character < m.index || character > m.index + m[0].length) continue;
    const isKey = /^\s*:/.test(cur.slice(m.index + m[0].length));
    const ctx = cursorContext(text, line, m.index);
    const key = isKey ? m[0] : ctx.key;
    if (!key) return null;
    const node = schemaAt([...ctx.parents, key]);
    return node ? describe([...ctx.parents, key].join('.'), node) : null;
  }
  return null;
}

function typeLabel(node: SchemaNode): string {
  if (node.enum) return node.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (node.properties) return 'mapping';
  if (Array.isArray(node.type)) return node.type.join(' | ');
  return node.type ?? 'value';
}

function describe(name: string, node: SchemaNode): string {
  const lines = [`**${name}** (${typeLabel(node)})`, '', node.description ?? ''];
  const facts: string[] = [];
  if (node.default !== undefined && !(typeof node.default === 'object' && node.default !== null && Object.keys(node.default).length === 0)) facts.push(`default: \`${JSON.stringify(node.default)}\``);
  if (node.minimum !== undefined) facts.push(`minimum: ${node.minimum}`);
  if (node.exclusiveMinimum !== undefined) facts.push(`greater than ${node.exclusiveMinimum}`);
  if (node.maximum !== undefined) facts.push(`maximum: ${node.maximum}`);
  if (facts.length) lines.push('', facts.join(' · '));
  return lines.join('\n');
}
