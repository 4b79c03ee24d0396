/**
 * A prompt template file (`*.prompt.yaml`): `prompt` and `response` (Jinja), optional `stop` (strings).
 * Rendering a record gives the prompt the model sees and the response it learns (EOS follows the response).
 * Problems are values with document offsets; nothing here throws on bad input.
 */
import * as fs from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Scalar } from 'yaml';
import { compilePart, renderPart, type CompiledPart, type VariableUse } from './jinja';
import { scalarOffsetMap } from './yamlmap';

export const TEMPLATE_KEYS = ['prompt', 'response', 'stop'] as const;

export interface TemplateProblem {
  code: 'template/yaml' | 'template/unknown-key' | 'template/syntax' | 'template/missing-response' | 'template/missing-prompt' | 'template/bad-stop';
  /** Offsets into the template file's text. */
  start: number;
  end: number;
  message: string;
}

export interface TemplatePart {
  compiled: CompiledPart;
  /** Value offset -> document offset. */
  toDoc: (offset: number) => number;
  /** Where the key is, for problems about the part as a whole. */
  keyStart: number;
  keyEnd: number;
}

export interface PromptTemplate {
  file: string;
  text: string;
  prompt: TemplatePart | null;
  response: TemplatePart | null;
  stop: string[];
  problems: TemplateProblem[];
}

export interface RenderedRecord {
  prompt: string;
  response: string;
}

export function parseTemplate(text: string, file: string): PromptTemplate {
  const problems: TemplateProblem[] = [];
  const result: PromptTemplate = { file, text, prompt: null, response: null, stop: [], problems };
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, keepSourceTokens: false });
  for (const e of doc.errors) problems.push({ code: 'template/yaml', start: e.pos[0], end: Math.max(e.pos[1], e.pos[0] + 1), message: `YAML: ${e.message.split('\n')[0]}` });
  if (doc.errors.length > 0) return result;
  const root = doc.contents;
  if (!isMap(root)) {
    problems.push({ code: 'template/yaml', start: 0, end: Math.min(1, text.length), message: 'a template is a mapping with `prompt` and `response` (Jinja) and optional `stop`' });
    return result;
  }
  for (const pair of root.items) {
    const key = pair.key;
    if (!isScalar(key)) continue;
    const name = String(key.value);
    const [keyStart, keyEnd] = key.range ?? [0, 0];
    if (name === 'prompt' || name === 'response') {
      if (!isScalar(pair.value) || typeof pair.value.value !== 'string') {
        problems.push({ code: 'template/yaml', start: keyStart, end: keyEnd, message: `\`${name}\` must be a string (Jinja)` });
        continue;
      }
      const node = pair.value as Scalar<string>;
      result[name] = { compiled: compilePart(node.value), toDoc: scalarOffsetMap(text, node), keyStart, keyEnd };
    } else if (name === 'stop') {
      const v = pair.value;
      if (isSeq(v) && v.items.every((i) => isScalar(i) && typeof i.value === 'string' && i.value !== '')) {
        result.stop = v.items.map((i) => String((i as Scalar).value));
      } else if (isScalar(v) && typeof v.value === 'string' && v.value !== '') result.stop = [v.value];
      else problems.push({ code: 'template/bad-stop', start: keyStart, end: keyEnd, message: '`stop` must be a list of non-empty strings' });
    } else {
      problems.push({ code: 'template/unknown-key', start: keyStart, end: keyEnd, message: `unknown key \`${name}\`: a template has ${TEMPLATE_KEYS.map((k) => `\`${k}\``).join(', ')}` });
    }
  }
  for (const part of ['prompt', 'response'] as const) {
    const p = result[part];
    if (p && !p.compiled.ok) {
      for (const e of p.compiled.problems) problems.push({ code: 'template/syntax', start: p.toDoc(e.start), end: p.toDoc(e.end), message: e.message });
    }
  }
  if (!result.prompt) problems.push({ code: 'template/missing-prompt', start: 0, end: firstLineEnd(text), message: 'the template has no `prompt` part: add `prompt:` with the text the model sees' });
  if (!result.response || (result.response.compiled.ok && result.response.compiled.source.trim() === '')) {
    const at = result.response ? { start: result.response.keyStart, end: result.response.keyEnd } : { start: 0, end: firstLineEnd(text) };
    problems.push({ code: 'template/missing-response', ...at, message: 'the template has no `response` part: add `response:` with the text the model learns to produce (e.g. "{{ summary }}")' });
  }
  return result;
}

function firstLineEnd(text: string): number {
  const nl = text.indexOf('\n');
  return nl < 0 ? text.length : nl;
}

const cache = new Map<string, { mtime: number; template: PromptTemplate }>();

/** Reads and parses a template file (cached by modification time); null when it cannot be read. */
export function readTemplate(file: string): PromptTemplate | null {
  try {
    const mtime = fs.statSync(file).mtimeMs;
    const hit = cache.get(file);
    if (hit && hit.mtime === mtime) return hit.template;
    const template = parseTemplate(fs.readFileSync(file, 'utf8'), file);
    cache.set(file, { mtime, template });
    return template;
  } catch {
    return null;
  }
}

/** Fields a record must supply: the free variables of both parts. */
export function templateVariables(t: PromptTemplate): VariableUse[] {
  const out: VariableUse[] = [];
  for (const p of [t.prompt, t.response]) {
    if (p?.compiled.ok) for (const v of p.compiled.variables) if (!out.some((o) => o.name === v.name)) out.push({ ...v, start: p.toDoc(v.start), end: p.toDoc(v.end) });
  }
  return out;
}

/** True when both parts compiled. */
export function isRenderable(t: PromptTemplate): t is PromptTemplate & { prompt: TemplatePart; response: TemplatePart } {
  return !!t.prompt?.compiled.ok && !!t.response?.compiled.ok;
}

/** Renders only the prompt (inference, and test records whose references are not the response's fields). */
export function renderPrompt(t: PromptTemplate & { prompt: TemplatePart }, record: Record<string, unknown>): string {
  return renderPart(t.prompt.compiled as Extract<CompiledPart, { ok: true }>, record);
}

/** Renders a record; throws the Jinja runtime error (callers turn it into a diagnostic). */
export function renderRecord(t: PromptTemplate & { prompt: TemplatePart; response: TemplatePart }, record: Record<string, unknown>): RenderedRecord {
  const prompt = t.prompt.compiled as Extract<CompiledPart, { ok: true }>;
  const response = t.response.compiled as Extract<CompiledPart, { ok: true }>;
  return { prompt: renderPart(prompt, record), response: renderPart(response, record) };
}
