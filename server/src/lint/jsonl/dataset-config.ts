/**
 * What a dataset is linted against: the template (or chat format and chat template) and tokenizer of the config
 * that names it (none for a .jsonl opened alone: then only JSON and structure rules apply), max_length, and the
 * other splits for leakage.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../../protocol/config';
import { chatTemplateIdentity, toTurns, type ChatFormat, type ChatTemplate } from '../../templates/chat';
import { isRenderable, renderRecord, templateVariables, type PromptTemplate } from '../../templates/template';
import type { Tokenizer } from '../../tokenizer/load';

export type Role = 'train' | 'validation' | 'test';

export interface SplitPrompts {
  file: string;
  role: Role;
  /** Rendered-prompt key -> first 0-based line. */
  prompts: Map<string, number>;
}

export interface DatasetContext {
  /** Identity of everything a line's result depends on (the line cache is kept per key). */
  key: string;
  file: string | null;
  role: Role | null;
  configFile: string | null;
  config: ResolvedConfig | null;
  template: PromptTemplate | null;
  /** Chat data (docs/chat-datasets.md); null for prompt-template data and for a file opened alone. */
  chat: ChatSetup | null;
  /**
   * Fields the template reads; null without a template. responseOnly: read by the response part only (a test
   * split needs only the prompt: its references may live in other fields, e.g. DialogSum's summary1..3). optional: only under `is defined` / `default`; tested:
   * tested for truth (present, may be empty); structured: iterated or read through (present, any JSON).
   */
  variables: { name: string; optional: boolean; tested: boolean; structured: boolean; responseOnly: boolean }[] | null;
  tokenizer: Tokenizer | null;
  /** Why the tokenizer is missing, when a config named a model. */
  tokenizerProblem: string | null;
  /** Why template/tokenizer checks are skipped although a config names this file (the config has errors). */
  configProblem: string | null;
  maxLength: number | null;
  lossOn: 'response' | 'all';
  /** The other splits of the config, for leakage; filled by the caller. */
  others: SplitPrompts[];
  log: (message: string) => void;
}

export interface ChatSetup {
  format: ChatFormat;
  /** `data.format` is auto: the format was read off the first training record. */
  detected: boolean;
  /** Null when none was found: the turns are still checked, but not rendered or counted. */
  template: ChatTemplate | null;
  /** Why there is no chat template. */
  problem: string | null;
}

export function standaloneContext(file: string | null, log: (message: string) => void = () => {}): DatasetContext {
  return {
    key: 'standalone',
    file,
    role: null,
    configFile: null,
    config: null,
    template: null,
    chat: null,
    variables: null,
    tokenizer: null,
    tokenizerProblem: null,
    configProblem: null,
    maxLength: null,
    lossOn: 'response',
    others: [],
    log,
  };
}

export interface ConfiguredParts {
  file: string | null;
  role: Role | null;
  configFile: string;
  config: ResolvedConfig;
  template: PromptTemplate | null;
  chat: ChatSetup | null;
  tokenizer: Tokenizer | null;
  tokenizerProblem: string | null;
  log: (message: string) => void;
}

export function configuredContext(p: ConfiguredParts): DatasetContext {
  let variables: DatasetContext['variables'] = null;
  if (p.template && isRenderable(p.template)) {
    const inPrompt = new Set(p.template.prompt.compiled.ok ? p.template.prompt.compiled.variables.map((v) => v.name) : []);
    variables = templateVariables(p.template).map((v) => ({ name: v.name, optional: v.optional, tested: v.tested, structured: v.structured, responseOnly: !inPrompt.has(v.name) }));
  }
  const key = [
    p.configFile,
    p.template ? `${p.template.file}:${hashText(p.template.text)}` : 'no-template',
    p.chat ? `chat:${p.chat.format}:${p.chat.template ? chatTemplateIdentity(p.chat.template) : 'none'}` : 'no-chat',
    p.tokenizer ? p.tokenizer.dir : `no-tokenizer:${p.tokenizerProblem}`,
    p.config.max_length,
    p.config.loss_on,
  ].join('|');
  return {
    key,
    file: p.file,
    role: p.role,
    configFile: p.configFile,
    config: p.config,
    template: p.template,
    chat: p.chat,
    variables,
    tokenizer: p.tokenizer,
    tokenizerProblem: p.tokenizerProblem,
    configProblem: null,
    maxLength: p.config.max_length,
    lossOn: p.config.loss_on ?? 'response',
    others: [],
    log: p.log,
  };
}

export function hashText(text: string): string {
  return createHash('sha1').update(text).digest('base64');
}

/** The role a config gives `file`, or null. */
export function roleOf(config: ResolvedConfig, file: string): Role | null {
  const same = (p: string | null | undefined): boolean => !!p && path.resolve(p) === path.resolve(file);
  if (same(config.data.train)) return 'train';
  if (same(config.data.validation)) return 'validation';
  if (same(config.data.test)) return 'test';
  return null;
}

const splitCache = new Map<string, { stamp: string; prompts: Map<string, number> }>();

/**
 * Rendered-prompt keys of the config's other splits (train vs validation/test): from an open document's latest
 * lint facts when `openFacts` has them (same template, so the same keys), else rendered from the disk (cached by
 * size and modification time). Records that do not render are skipped; unreadable files give no entry.
 */
export function otherSplits(
  ctx: DatasetContext,
  readText: (file: string) => string | null,
  openFacts: (file: string) => readonly { key: string | null; kind: string }[] | null = () => null,
): SplitPrompts[] {
  const config = ctx.config;
  const promptKey = splitKey(ctx);
  if (!config || !promptKey || !ctx.role) return [];
  const wanted: [Role, string | null][] =
    ctx.role === 'train' ? [['validation', config.data.validation], ['test', config.data.test]] : [['train', config.data.train]];
  const out: SplitPrompts[] = [];
  for (const [role, file] of wanted) {
    if (!file || (ctx.file && path.resolve(file) === path.resolve(ctx.file))) continue;
    const facts = openFacts(file);
    if (facts) {
      const prompts = new Map<string, number>();
      facts.forEach((f, line) => {
        if (f.key !== null && f.kind === 'record' && !prompts.has(f.key)) prompts.set(f.key, line);
      });
      out.push({ file, role, prompts });
      continue;
    }
    let stamp: string;
    try {
      const st = fs.statSync(file);
      stamp = `${ctx.key}|${st.size}|${st.mtimeMs}`;
    } catch {
      continue;
    }
    let hit = splitCache.get(file);
    if (!hit || hit.stamp !== stamp) {
      const text = readText(file);
      if (text === null) continue;
      const prompts = new Map<string, number>();
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!.replace(/^\uFEFF/, '').replace(/\r$/, '');
        if (line.trim() === '') continue;
        try {
          const record = JSON.parse(line);
          if (typeof record !== 'object' || record === null || Array.isArray(record)) continue;
          const key = promptKey(record);
          if (key !== null && !prompts.has(key)) prompts.set(key, i);
        } catch {
          // invalid lines are that file's own diagnostics
        }
      }
      hit = { stamp, prompts };
      splitCache.set(file, hit);
    }
    out.push({ file, role, prompts: hit.prompts });
  }
  return out;
}

/** A record's leakage key, as the line's own facts compute it (its rendered prompt); null without a template. */
function splitKey(ctx: DatasetContext): ((record: Record<string, unknown>) => string | null) | null {
  const template = ctx.template;
  if (template && isRenderable(template)) return (record) => hashText(renderRecord(template, record).prompt);
  const chat = ctx.chat;
  if (!chat?.template) return null;
  const chatTemplate = chat.template;
  return (record) => {
    const { turns, problems } = toTurns(record, chat.format);
    return problems.length === 0 ? hashText(chatTemplate.prompt(turns)) : null;
  };
}

export function readFileText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
