/**
 * One Jinja part of a prompt template: compiled once with @huggingface/jinja, rendered per record.
 *
 * Rendering contract, shared with the engine (engine/qlora_engine/template.py, checked byte for byte by
 * test/lsp/template-parity.test.ts): jinja2's `ImmutableSandboxedEnvironment(undefined=StrictUndefined,
 * keep_trailing_newline=True)` — no trim_blocks, no lstrip_blocks. @huggingface/jinja's Template always trims and
 * lstrips blocks, so the source is tokenized here without those options; it also drops one trailing newline, so a
 * newline is appended first. Undefined variables are errors in the engine: records lacking a field the template
 * needs are reported (jsonl/missing-field) and not rendered.
 * Syntax errors are located by a tag scanner (the library's errors carry no position): each `{{ }}` / `{% %}`
 * tag is parsed on its own, and block tags are matched on a stack.
 */
import { parse, Template, tokenize } from '@huggingface/jinja';

export interface JinjaProblem {
  /** Offsets into the part's source. */
  start: number;
  end: number;
  message: string;
}

export interface VariableUse {
  name: string;
  /** Only under `name is defined` / `name | default(...)`: records may leave it out. */
  optional: boolean;
  /** Tested for truth (`{% if name %}`): records must have it (StrictUndefined) but it may be empty or null. */
  tested: boolean;
  /** Iterated (`{% for x in name %}`) or read through (`name.key`, `name[0]`): any JSON type will do. */
  structured: boolean;
  /** First occurrence inside a tag, offsets into the source. */
  start: number;
  end: number;
}

export type CompiledPart =
  | { ok: true; source: string; template: Template; variables: VariableUse[]; simple: SimplePiece[] | null }
  | { ok: false; source: string; problems: JinjaProblem[] };

/** Literal text or a bare `{{ name }}`: templates made only of these render by concatenation. */
type SimplePiece = string | { variable: string };

const GLOBALS = new Set(['true', 'false', 'none', 'True', 'False', 'None', 'range', 'namespace', 'raise_exception', 'strftime_now', 'loop']);
const OPENERS: Record<string, string> = { if: 'endif', for: 'endfor', macro: 'endmacro', call: 'endcall', filter: 'endfilter', generation: 'endgeneration' };
const MIDDLES: Record<string, string[]> = { elif: ['if'], else: ['if', 'for'] };

interface Tag {
  kind: '{{' | '{%' | '{#';
  start: number;
  end: number;
  inner: string;
}

/** Tags of a Jinja source, with unclosed ones reported. */
function scanTags(source: string, problems: JinjaProblem[]): Tag[] {
  const tags: Tag[] = [];
  const open = /\{\{|\{%|\{#/g;
  for (let m = open.exec(source); m !== null; m = open.exec(source)) {
    const kind = m[0] as Tag['kind'];
    const close = kind === '{{' ? '}}' : kind === '{%' ? '%}' : '#}';
    let i = m.index + 2;
    let quote = '';
    let end = -1;
    for (; i < source.length; i++) {
      const c = source[i];
      if (kind !== '{#' && quote) {
        if (c === '\\') i++;
        else if (c === quote) quote = '';
      } else if (kind !== '{#' && (c === '"' || c === "'")) quote = c;
      else if (source.startsWith(close, i)) {
        end = i + 2;
        break;
      }
    }
    if (end < 0) {
      problems.push({ start: m.index, end: m.index + 2, message: `'${kind}' is never closed with '${close}'` });
      break;
    }
    tags.push({ kind, start: m.index, end, inner: source.slice(m.index + 2, end - 2).replace(/^[-+]|[-+]$/g, '') });
    open.lastIndex = end;
  }
  return tags;
}

/** A Template with the engine's whitespace rules (see the file comment). */
function compile(source: string): Template {
  const template = new Template('');
  template.parsed = parse(tokenize(`${source}\n`, {}));
  return template;
}

function tryParse(source: string): string | null {
  try {
    compile(source);
    return null;
  } catch (error) {
    return (error as Error).message.replace(/^Parser Error: /, '');
  }
}

export function compilePart(source: string): CompiledPart {
  const problems: JinjaProblem[] = [];
  const tags = scanTags(source, problems);
  const stack: { name: string; tag: Tag }[] = [];
  for (const tag of tags) {
    if (tag.kind === '{#') continue;
    const at = { start: tag.start, end: tag.end };
    if (tag.kind === '{{') {
      const error = tag.inner.trim() === '' ? 'empty expression' : tryParse(`{{${tag.inner}}}`);
      if (error) problems.push({ ...at, message: `Jinja syntax error: ${error}` });
      continue;
    }
    const name = /^\s*([A-Za-z_]\w*)/.exec(tag.inner)?.[1] ?? '';
    if (name.startsWith('end')) {
      const top = stack.pop();
      if (!top) problems.push({ ...at, message: `'{% ${name} %}' without an opening tag` });
      else if (OPENERS[top.name] !== name) {
        problems.push({ ...at, message: `'{% ${name} %}' closes '{% ${top.name} %}' opened earlier; expected '{% ${OPENERS[top.name]} %}'` });
      }
      continue;
    }
    if (name in MIDDLES) {
      const top = stack.at(-1);
      if (!top || !MIDDLES[name]!.includes(top.name)) problems.push({ ...at, message: `'{% ${name} %}' outside of ${MIDDLES[name]!.map((n) => `'{% ${n} %}'`).join(' or ')}` });
      else if (name === 'elif') {
        const error = tryParse(`{% if true %}{%${tag.inner}%}{% endif %}`);
        if (error) problems.push({ ...at, message: `Jinja syntax error: ${error}` });
      }
      continue;
    }
    const blockSet = name === 'set' && !tag.inner.includes('=');
    if (name in OPENERS || blockSet) {
      const closer = blockSet ? 'endset' : OPENERS[name]!;
      const error = tryParse(`{%${tag.inner}%}{% ${closer} %}`);
      if (error) problems.push({ ...at, message: `Jinja syntax error: ${error}` });
      stack.push({ name: blockSet ? 'set' : name, tag });
      continue;
    }
    if (['set', 'break', 'continue'].includes(name)) {
      const wrapped = name === 'set' ? `{%${tag.inner}%}` : `{% for x in [] %}{%${tag.inner}%}{% endfor %}`;
      const error = tryParse(wrapped);
      if (error) problems.push({ ...at, message: `Jinja syntax error: ${error}` });
      continue;
    }
    problems.push({ ...at, message: name ? `unknown Jinja tag '${name}'` : 'empty block tag' });
  }
  for (const open of stack) {
    const closer = open.name === 'set' ? 'endset' : OPENERS[open.name];
    problems.push({ start: open.tag.start, end: open.tag.end, message: `'{% ${open.name} %}' is never closed with '{% ${closer} %}'` });
  }
  if (problems.length === 0) {
    const error = tryParse(source);
    if (error) problems.push({ start: 0, end: Math.min(source.length, 1), message: `Jinja syntax error: ${error}` });
  }
  if (problems.length > 0) return { ok: false, source, problems };
  const template = compile(source);
  return { ok: true, source, template, variables: freeVariables(template, source, tags), simple: simplePieces(template) };
}

/** Renders a compiled part with a record's fields; throws the Jinja runtime error. */
export function renderPart(part: Extract<CompiledPart, { ok: true }>, record: Record<string, unknown>): string {
  if (part.simple) {
    let out = '';
    let fast = true;
    for (const piece of part.simple) {
      if (typeof piece === 'string') out += piece;
      else {
        const value = record[piece.variable];
        if (typeof value !== 'string') {
          fast = false;
          break;
        }
        out += value;
      }
    }
    if (fast) return out;
  }
  return part.template.render(record);
}

type AstNode = { type: string; [key: string]: unknown };

function isNode(value: unknown): value is AstNode {
  return typeof value === 'object' && value !== null && typeof (value as AstNode).type === 'string';
}

/** Names the template reads from the record (not bound by for/set/macro, not globals), in order of first use. */
function freeVariables(template: Template, source: string, tags: Tag[]): VariableUse[] {
  const bound = new Set<string>();
  const used: string[] = [];
  const guarded = new Set<string>();
  const tested = new Set<string>();
  const structured = new Set<string>();
  const rootName = (node: unknown): string | null => {
    if (!isNode(node)) return null;
    if (node.type === 'Identifier') return node.value as string;
    if (node.type === 'MemberExpression') return rootName(node.object);
    return null;
  };
  let guard = 0;
  let testing = 0;
  const testedVisit = (node: unknown): void => {
    testing++;
    visit(node);
    testing--;
  };
  const guardedVisit = (node: unknown): void => {
    guard++;
    visit(node);
    guard--;
  };
  const bind = (target: unknown): void => {
    if (!isNode(target)) return;
    if (target.type === 'Identifier') bound.add(target.value as string);
    else if (target.type === 'TupleLiteral' || target.type === 'ArrayLiteral') for (const t of target.value as unknown[]) bind(t);
  };
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) visit(n);
      return;
    }
    if (!isNode(node)) return;
    switch (node.type) {
      case 'Identifier':
        if (!used.includes(node.value as string)) used.push(node.value as string);
        if (guard > 0) guarded.add(node.value as string);
        if (testing > 0) tested.add(node.value as string);
        return;
      case 'If':
        testedVisit(node.test);
        visit(node.body);
        visit(node.alternate);
        return;
      case 'Ternary':
        testedVisit(node.condition);
        visit(node.trueExpr);
        visit(node.falseExpr);
        return;
      case 'For': {
        bind(node.loopvar);
        const root = rootName(node.iterable);
        if (root) structured.add(root);
        visit(node.iterable);
        visit(node.body);
        visit(node.defaultBlock);
        return;
      }
      case 'Set':
        bind(node.assignee);
        visit(node.value);
        visit(node.body);
        return;
      case 'Macro':
        bind(node.name);
        for (const a of node.args as unknown[]) bind(isNode(a) && a.type === 'KeywordArgumentExpression' ? a.key : a);
        visit(node.body);
        return;
      case 'MemberExpression': {
        const root = rootName(node.object);
        if (root) structured.add(root);
        visit(node.object);
        if (node.computed) visit(node.property);
        return;
      }
      case 'FilterExpression':
        if (isNode(node.filter) && ['default', 'd'].includes(filterName(node.filter))) guardedVisit(node.operand);
        else visit(node.operand);
        if (isNode(node.filter) && node.filter.type === 'CallExpression') visit(node.filter.args);
        return;
      case 'FilterStatement':
        if (isNode(node.filter) && node.filter.type === 'CallExpression') visit(node.filter.args);
        visit(node.body);
        return;
      case 'TestExpression':
        // Only `is defined` / `is undefined` are safe on a missing value under StrictUndefined.
        if (isNode(node.test) && ['defined', 'undefined'].includes(node.test.value as string)) guardedVisit(node.operand);
        else visit(node.operand);
        return;
      case 'KeywordArgumentExpression':
        visit(node.value);
        return;
      case 'ObjectLiteral':
        for (const [k, v] of node.value as Map<unknown, unknown>) {
          visit(k);
          visit(v);
        }
        return;
      default:
        for (const [key, value] of Object.entries(node)) if (key !== 'type') visit(value);
    }
  };
  visit(template.parsed.body);
  const names = used.filter((n) => !bound.has(n) && !GLOBALS.has(n));
  return names.map((name) => {
    const optional = guarded.has(name);
    const word = new RegExp(`(?<![\\w.'"])${name}(?!\\w)`);
    for (const tag of tags) {
      if (tag.kind === '{#') continue;
      const m = word.exec(tag.inner);
      if (m) {
        const start = source.indexOf(tag.inner, tag.start) + m.index;
        return { name, optional, tested: tested.has(name), structured: structured.has(name), start, end: start + name.length };
      }
    }
    return { name, optional, tested: tested.has(name), structured: structured.has(name), start: 0, end: 0 };
  });
}

function filterName(filter: AstNode): string {
  if (filter.type === 'Identifier') return filter.value as string;
  const callee = filter.callee;
  return isNode(callee) && callee.type === 'Identifier' ? (callee.value as string) : '';
}

function simplePieces(template: Template): SimplePiece[] | null {
  const pieces: SimplePiece[] = [];
  for (const node of template.parsed.body as unknown as AstNode[]) {
    if (node.type === 'StringLiteral') pieces.push(node.value as string);
    else if (node.type === 'Identifier') pieces.push({ variable: node.value as string });
    else return null;
  }
  return pieces;
}
