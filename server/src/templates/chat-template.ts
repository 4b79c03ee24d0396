/**
 * The chat template of a chat dataset (docs/chat-datasets.md, "The chat template" and "Which tokens are
 * trained"): found in the config's `chat_template:` file or the model folder, rendered as transformers'
 * apply_chat_template renders it, and cut into trained and untrained segments by the prefix rule. The engine
 * (engine/qlora_engine/chat.py) implements the same rules; test/lsp/chat-parity.test.ts compares the two.
 *
 * @huggingface/jinja's `Template` compiles with trim_blocks and lstrip_blocks and drops one trailing newline, as
 * transformers' chat-template environment does (jinja2's keep_trailing_newline is off there), so the source is
 * used as it is — unlike prompt templates (jinja.ts), which follow the engine's own stricter environment.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { pyRstrip, pyStrip, type Turn } from './chat-turns';

export interface ChatSegment {
  text: string;
  trained: boolean;
}

export interface ChatTemplate {
  /** Where it came from: the config's file, the model's chat_template.jinja or tokenizer_config.json. */
  file: string;
  render(turns: Turn[], addGenerationPrompt: boolean): string;
  /** The prefix rule's segments of the whole conversation; throws when the template is not prefix-stable. */
  segments(turns: Turn[]): ChatSegment[];
  /** What the model is given to write the final assistant turn (or to answer a final user turn). */
  prompt(turns: Turn[]): string;
  /** The end-of-turn marker ([] when none is found). */
  stop: string[];
}

export type ChatTemplateLoad = { ok: true; template: ChatTemplate } | { ok: false; message: string };

const SPECIAL_TOKENS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;
const EXAMPLE = 'samples/chat/chatml.jinja';

interface Source {
  file: string;
  text: string;
}

/**
 * The chat template: `explicitFile` (the config's chat_template, absolute) when given, else the model folder's
 * own. Special tokens come from the model folder's tokenizer_config.json (none without a folder).
 */
export function loadChatTemplate(explicitFile: string | null, modelFolder: string | null): ChatTemplateLoad {
  const config = modelFolder ? readTokenizerConfig(modelFolder) : { json: {} };
  if ('message' in config) return { ok: false, message: config.message };
  let source: Source;
  if (explicitFile) {
    try {
      source = { file: explicitFile, text: fs.readFileSync(explicitFile, 'utf8') };
    } catch (error) {
      return { ok: false, message: `cannot read the chat template ${explicitFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): set chat_template: in the config to a Jinja file that exists` };
    }
  } else if (modelFolder) {
    const found = modelTemplate(modelFolder, config.json);
    if ('message' in found) return { ok: false, message: found.message };
    source = found;
  } else {
    return { ok: false, message: `no chat template: the model is not a local folder to take one from; set chat_template: in the config to a Jinja file, e.g. ${EXAMPLE}` };
  }
  const tokens: Record<string, string> = {};
  for (const name of SPECIAL_TOKENS) {
    const value = config.json[name];
    const text = typeof value === 'string' ? value : isObject(value) && typeof value.content === 'string' ? value.content : null;
    if (text !== null) tokens[name] = text;
  }
  return compileChatTemplate(source, tokens);
}

/** Compiled templates by source and tokens; a few, since an edited template file gives a new source each time. */
const compiled = new Map<string, ChatTemplateLoad>();
const MAX_COMPILED = 16;
const identities = new WeakMap<ChatTemplate, string>();

/** What a template's renders depend on (its source and special tokens), for cache keys. */
export function chatTemplateIdentity(template: ChatTemplate): string {
  return identities.get(template) ?? template.file;
}

function compileChatTemplate(source: Source, tokens: Record<string, string>): ChatTemplateLoad {
  const identity = createHash('sha1').update(JSON.stringify([source.file, source.text, tokens])).digest('base64');
  const hit = compiled.get(identity);
  if (hit) return hit;
  let jinja: Template;
  try {
    jinja = new Template(source.text);
  } catch (error) {
    return { ok: false, message: `the chat template ${source.file} is not valid Jinja (${(error as Error).message}): fix it, or set chat_template: in the config to another Jinja file` };
  }
  // raise_exception(message), which transformers adds, is one of @huggingface/jinja's globals: it throws the message.
  const render = (turns: Turn[], addGenerationPrompt: boolean): string => {
    try {
      return jinja.render({
        ...tokens,
        // Key order role, content: a template that prints a message (`tojson`) shows it as Python does.
        messages: turns.map((t) => ({ role: t.role, content: t.content })),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (error) {
      throw new Error(`the chat template ${source.file} fails on this conversation: ${(error as Error).message}`);
    }
  };
  const template: ChatTemplate = {
    file: source.file,
    render,
    segments: (turns) => conversationParts(template, turns).segments,
    prompt: (turns) => render(turns.at(-1)?.role === 'assistant' ? turns.slice(0, -1) : turns, true),
    stop: [],
  };
  template.stop = endMarker(render);
  const result: ChatTemplateLoad = { ok: true, template };
  identities.set(template, identity);
  if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
  compiled.set(identity, result);
  return result;
}

/**
 * The segments of a whole conversation and its prompt, from one set of renders. For assistant turn i:
 * P = render(turns[:i], true), E = render(turns[:i+1], false); F = render(all, false) must start with E and E
 * with P; the trained span is F[len(P) : len(rstrip(E))] (the content and the end-of-turn marker). The prompt is
 * the last assistant turn's P (or, for a conversation ending with a user turn, render(turns, true)).
 */
export function conversationParts(template: ChatTemplate, turns: Turn[]): { segments: ChatSegment[]; prompt: string } {
  const whole = template.render(turns, false);
  const segments: ChatSegment[] = [];
  let at = 0;
  let prompt: string | null = null;
  turns.forEach((turn, i) => {
    if (turn.role !== 'assistant') return;
    const before = template.render(turns.slice(0, i), true);
    // Through the last turn is the whole conversation: one render fewer for the common single exchange.
    const through = i === turns.length - 1 ? whole : template.render(turns.slice(0, i + 1), false);
    if (!through.startsWith(before) || !whole.startsWith(through) || before.length < at) {
      const which = !through.startsWith(before) || before.length < at ? `with assistant turn ${i + 1} does not start with the text before it` : `through turn ${i + 1} is not the start of the whole conversation`;
      throw new Error(
        `the chat template ${template.file} is not prefix-stable: the conversation ${which} (it rewrites earlier turns, e.g. drops past reasoning), so its turns cannot be trained one by one; set chat_template: in the config to a template that renders every turn as it is, e.g. ${EXAMPLE}`,
      );
    }
    const start = before.length;
    const end = pyRstrip(through).length;
    if (end <= start) throw new Error(`the chat template ${template.file} renders no text for assistant turn ${i + 1}, so there is nothing to train on`);
    if (start > at) segments.push({ text: whole.slice(at, start), trained: false });
    segments.push({ text: whole.slice(start, end), trained: true });
    at = end;
    prompt = before;
  });
  if (at < whole.length) segments.push({ text: whole.slice(at), trained: false });
  return { segments, prompt: turns.at(-1)?.role === 'assistant' && prompt !== null ? prompt : template.render(turns, true) };
}

/**
 * The text after the content in render([user "Hi", assistant "Hello"], false), whitespace stripped — found where
 * the assistant turn starts (after render([user "Hi"], true)), as the engine finds it; none when the content is
 * not there.
 */
function endMarker(render: (turns: Turn[], gen: boolean) => string): string[] {
  const user: Turn = { role: 'user', content: 'Hi' };
  let before: string;
  let through: string;
  try {
    before = render([user], true);
    through = render([user, { role: 'assistant', content: 'Hello' }], false);
  } catch {
    return [];
  }
  if (!through.startsWith(before) || !through.startsWith('Hello', before.length)) return [];
  const marker = pyStrip(through.slice(before.length + 'Hello'.length));
  return marker ? [marker] : [];
}

type Json = Record<string, unknown>;

function readTokenizerConfig(folder: string): { json: Json } | { message: string } {
  const file = path.join(folder, 'tokenizer_config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { json: {} };
  }
  try {
    const json: unknown = JSON.parse(text);
    return { json: isObject(json) ? json : {} };
  } catch (error) {
    return { message: `${file} is not valid JSON (${(error as Error).message}): the chat template's special tokens cannot be read` };
  }
}

/** The model folder's chat_template.jinja, else tokenizer_config.json's chat_template (a string, or `default` of a list). */
function modelTemplate(folder: string, config: Json): Source | { message: string } {
  const jinja = path.join(folder, 'chat_template.jinja');
  if (fs.existsSync(jinja)) {
    try {
      return { file: jinja, text: fs.readFileSync(jinja, 'utf8') };
    } catch (error) {
      return { message: `cannot read ${jinja}: ${(error as Error).message}` };
    }
  }
  const configFile = path.join(folder, 'tokenizer_config.json');
  const value = config.chat_template;
  if (typeof value === 'string') return { file: configFile, text: value };
  if (Array.isArray(value)) {
    const named = value.filter(isObject);
    const found = named.find((t) => t.name === 'default');
    if (found && typeof found.template === 'string') return { file: configFile, text: found.template };
    const names = named.map((t) => `"${String(t.name)}"`).join(', ');
    return { message: `${configFile} lists chat templates ${names} but none named "default": set chat_template: in the config to a Jinja file with the one to use` };
  }
  return {
    message: `the model ${folder} has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json): set chat_template: in the config to a Jinja file, e.g. ${EXAMPLE}`,
  };
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
