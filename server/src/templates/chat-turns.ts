/**
 * Chat records -> turns (docs/chat-datasets.md, "Formats" and "What a conversation must be"): the three shapes
 * (OpenAI `messages`, ShareGPT `conversations`, Alpaca `instruction`/`input`/`output`), the `auto` detection, and
 * the checks the engine (engine/qlora_engine/chat.py) makes before training. Problems are values that name the
 * record's own field (`messages[2].content`, `conversations[0].from`, `output`), so the editor can mark it.
 */
import type { ChatFormat } from '../../../protocol/config';

// The formats are config values, defined once with the config.
export { CHAT_FORMATS, type ChatFormat, type DataFormat } from '../../../protocol/config';

export interface Turn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export type ChatProblemKind = 'structure' | 'unknown-role' | 'empty-turn' | 'order' | 'no-assistant-end';

export interface ChatProblem {
  /** The record's field: `messages[2].content`, `conversations[0].from`, `output`. */
  field: string;
  kind: ChatProblemKind;
  message: string;
}

/** The `auto` rule: which keys of the (first) record say which format; null when none do. */
export function detectFormat(record: Record<string, unknown>): ChatFormat | null {
  if ('messages' in record) return 'messages';
  if ('conversations' in record) return 'sharegpt';
  if ('instruction' in record && 'output' in record) return 'alpaca';
  return null;
}

/** The record fields each format reads. */
export const FORMAT_FIELDS: Record<ChatFormat, readonly string[]> = {
  messages: ['messages'],
  sharegpt: ['conversations', 'system'],
  alpaca: ['instruction', 'input', 'output', 'system'],
};

const SHAREGPT_ROLES: Record<string, Turn['role']> = { system: 'system', human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant' };
const MESSAGES_ROLES: Record<string, Turn['role']> = { system: 'system', user: 'user', assistant: 'assistant' };

/** A turn as read, with the fields it came from (for problems). */
interface Sourced {
  role: Turn['role'] | null;
  content: string | null;
  /** Where the role is named (`messages[1].role`), or the field the turn is made of (alpaca, ShareGPT's `system`). */
  roleField: string;
  contentField: string;
  /** The text that must not be empty, when it is not the content (alpaca's instruction, before the input is joined). */
  text?: string | null;
}

/** The record's turns in `format`; `turns` is meaningful only when `problems` is empty. */
export function toTurns(record: Record<string, unknown>, format: ChatFormat): { turns: Turn[]; problems: ChatProblem[] } {
  const problems: ChatProblem[] = [];
  const read = format === 'alpaca' ? alpacaTurns(record, problems) : listTurns(record, format, problems);
  for (const t of read) {
    const text = t.text === undefined ? t.content : t.text;
    if (text !== null && isBlank(text)) {
      problems.push({ field: t.contentField, kind: 'empty-turn', message: `${t.contentField} is ${text === '' ? 'empty' : 'only whitespace'}: every turn needs text` });
    }
  }
  // Order is judged only over turns that all read (a turn that does not would make the rest look misplaced).
  if (read.length > 0 && !problems.some((p) => p.kind === 'structure' || p.kind === 'unknown-role')) checkOrder(read, problems);
  const turns = read.map((t) => ({ role: t.role ?? 'user', content: t.content ?? '' }));
  return { turns, problems };
}

function listTurns(record: Record<string, unknown>, format: 'messages' | 'sharegpt', problems: ChatProblem[]): Sourced[] {
  const key = format === 'messages' ? 'messages' : 'conversations';
  const [roleKey, contentKey] = format === 'messages' ? ['role', 'content'] : ['from', 'value'];
  const roles = format === 'messages' ? MESSAGES_ROLES : SHAREGPT_ROLES;
  const list = record[key];
  if (!Array.isArray(list) || list.length === 0) {
    const what = list === undefined ? 'is missing' : Array.isArray(list) ? 'is an empty list' : `is ${kindOf(list)}, not a list`;
    problems.push({ field: key, kind: 'structure', message: `"${key}" ${what}: a ${format} record holds its turns as a non-empty list of {"${roleKey}": …, "${contentKey}": …}` });
    return [];
  }
  const out: Sourced[] = [];
  if (format === 'sharegpt') {
    // A null system is no system here (the engine's rule); a blank one is skipped, as in alpaca.
    const system = record.system === null ? null : systemField(record, problems);
    const first = list[0];
    const hasSystem = isObject(first) && first[roleKey] === 'system';
    if (system !== null && !isBlank(system) && !hasSystem) out.push({ role: 'system', content: system, roleField: 'system', contentField: 'system' });
  }
  list.forEach((item, i) => {
    const at = `${key}[${i}]`;
    if (!isObject(item)) {
      problems.push({ field: at, kind: 'structure', message: `${at} is ${kindOf(item)}: a turn is an object {"${roleKey}": …, "${contentKey}": …}` });
      return;
    }
    const roleField = `${at}.${roleKey}`;
    const contentField = `${at}.${contentKey}`;
    const name = item[roleKey];
    const role = typeof name === 'string' ? (roles[name] ?? null) : null;
    if (role === null) {
      const known = Object.keys(roles).map((r) => `"${r}"`).join(', ');
      const what = name === undefined ? `has no "${roleKey}"` : typeof name === 'string' ? `"${name}" is not a known role` : `is ${kindOf(name)}, not a role name`;
      problems.push({ field: name === undefined ? at : roleField, kind: 'unknown-role', message: `${name === undefined ? at : roleField} ${what}: use ${known}` });
    }
    const content = item[contentKey];
    if (typeof content !== 'string') {
      const what = content === undefined ? `has no "${contentKey}"` : `is ${kindOf(content)}`;
      const field = content === undefined ? at : contentField;
      problems.push({ field, kind: content === undefined || content === null ? 'empty-turn' : 'structure', message: `${field} ${what}: every turn's ${contentKey} is a string` });
    }
    out.push({ role, content: typeof content === 'string' ? content : null, roleField, contentField });
  });
  return out;
}

function alpacaTurns(record: Record<string, unknown>, problems: ChatProblem[]): Sourced[] {
  const out: Sourced[] = [];
  const system = systemField(record, problems);
  if (system !== null && !isBlank(system)) out.push({ role: 'system', content: system, roleField: 'system', contentField: 'system' });
  const instruction = requiredText(record, 'instruction', problems);
  const input = record.input;
  if (input !== undefined && typeof input !== 'string') {
    problems.push({ field: 'input', kind: 'structure', message: `"input" is ${kindOf(input)}: when present it must be a string (it is joined to the instruction)` });
  }
  const content = instruction !== null && typeof input === 'string' && input !== '' ? `${instruction}\n${input}` : instruction;
  out.push({ role: 'user', content, roleField: 'instruction', contentField: 'instruction', text: instruction });
  out.push({ role: 'assistant', content: requiredText(record, 'output', problems), roleField: 'output', contentField: 'output' });
  return out;
}

/** A top-level `system` (alpaca, ShareGPT): a string when present; null when absent or unusable. */
function systemField(record: Record<string, unknown>, problems: ChatProblem[]): string | null {
  const system = record.system;
  if (system === undefined) return null;
  if (typeof system === 'string') return system;
  problems.push({ field: 'system', kind: 'structure', message: `"system" is ${kindOf(system)}: when present it must be a string (the system prompt)` });
  return null;
}

/** An alpaca field that must be text: a string (emptiness is checked with every turn's content). */
function requiredText(record: Record<string, unknown>, key: string, problems: ChatProblem[]): string | null {
  const value = record[key];
  if (typeof value === 'string') return value;
  const what = value === undefined ? 'is missing' : `is ${kindOf(value)}`;
  problems.push({ field: key, kind: value === undefined || value === null ? 'empty-turn' : 'structure', message: `"${key}" ${what}: an alpaca record needs "instruction" and "output" as text` });
  return null;
}

/** At most one system turn, first; then user and assistant alternate from user; the last turn is the assistant's. */
function checkOrder(turns: Sourced[], problems: ChatProblem[]): void {
  // Alternation is judged against the previous user or assistant turn, so a misplaced system turn is one problem.
  let previous: Turn['role'] | null = null;
  turns.forEach((t, i) => {
    let why: string | null = null;
    if (t.role === 'system') why = i === 0 ? null : 'a system turn may only come first';
    else if (t.role === 'user' && previous === 'user') why = 'a user turn follows a user turn: user and assistant turns alternate';
    else if (t.role === 'assistant' && previous === 'assistant') why = 'an assistant turn follows an assistant turn: user and assistant turns alternate';
    else if (t.role === 'assistant' && previous !== 'user') why = 'the conversation must start with a user turn (after an optional system turn)';
    if (why) problems.push({ field: t.roleField, kind: 'order', message: `${t.roleField}: ${why}` });
    if (t.role !== 'system') previous = t.role;
  });
  const last = turns[turns.length - 1]!;
  if (last.role !== 'assistant') {
    problems.push({ field: last.roleField, kind: 'no-assistant-end', message: `the conversation ends with a ${last.role} turn (${last.roleField}): the last turn must be the assistant's, the text the model learns` });
  }
}

/**
 * Python's str.isspace characters: the engine tests and strips with strip()/rstrip(), which differ from JavaScript's
 * trim (\x1c-\x1f and \x85 are space in Python, \ufeff is not).
 */
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_SPACE.test(s[end - 1]!)) end--;
  return s.slice(0, end);
}

export function pyStrip(s: string): string {
  let start = 0;
  while (start < s.length && PY_SPACE.test(s[start]!)) start++;
  return pyRstrip(s.slice(start));
}

function isBlank(s: string): boolean {
  return pyRstrip(s) === '';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}
