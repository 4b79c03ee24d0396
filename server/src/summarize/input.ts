/**
 * A summary's input as the model sees it: the text bound to the template's input variable (the prompt's first
 * variable that the response does not use: `dialogue` for DialogSum) or, for a chat config, sent as one user turn
 * in the config's record format through its chat template. Shared by Summarize Selection and `qlora-studio summarize`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ResolvedConfig } from '../../../protocol/config';
import { JobErrorCodes, type JobProblem } from '../../../protocol/lsp';
import { loadChatTemplate } from '../templates/chat';
import { compilePart, renderPart } from '../templates/jinja';

/** The record sent to the engine, the template variable the text went into (null for chat), the rendered prompt. */
export interface BoundInput {
  variable: string | null;
  record: Record<string, unknown>;
  prompt: string;
}

/** The template or chat template cannot take the text: the file at fault, when there is one. */
function unusable(message: string, file?: string | null): { problem: JobProblem } {
  return { problem: { code: JobErrorCodes.RunNotUsable, message, fix: null, ...(file ? { file } : {}) } };
}

/** The config's way in: its prompt template, or its chat template for a chat dataset (`template: null`). */
export function bindSummaryInput(config: ResolvedConfig, text: string): BoundInput | { problem: JobProblem } {
  return config.template === null ? bindChatInput(config, text) : bindInput(config.template, text);
}

/** The template variable the input binds to, and the prompt as the model will see it. */
export function bindInput(templateFile: string, text: string): { variable: string; record: Record<string, string>; prompt: string } | { problem: JobProblem } {
  let doc: Record<string, unknown>;
  try {
    doc = parseYaml(fs.readFileSync(templateFile, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    return unusable(`Cannot read the template ${templateFile}: ${(error as Error).message}`, templateFile);
  }
  const prompt = compilePart(typeof doc?.prompt === 'string' ? doc.prompt : '');
  const response = compilePart(typeof doc?.response === 'string' ? doc.response : '');
  if (!prompt.ok) return unusable(`The template's prompt does not compile: ${prompt.problems[0]?.message ?? '?'}`, templateFile);
  const responseVars = new Set(response.ok ? response.variables.map((v) => v.name) : []);
  const inputs = prompt.variables.map((v) => v.name).filter((n) => !responseVars.has(n));
  const variable = inputs[0] ?? prompt.variables[0]?.name;
  if (!variable) return unusable(`The template's prompt uses no variable to put the selection in.`, templateFile);
  const record: Record<string, string> = {};
  for (const name of inputs) record[name] = '';
  record[variable] = text;
  let rendered: string;
  try {
    rendered = renderPart(prompt, record);
  } catch (error) {
    return unusable(`The template's prompt does not render: ${(error as Error).message}`, templateFile);
  }
  return { variable, record, prompt: rendered };
}

/**
 * A chat config's input: the text as one user turn, in the config's record format (the engine reads it as it read
 * the training records), and the prompt its chat template makes of it.
 */
export function bindChatInput(config: ResolvedConfig, text: string): { variable: null; record: Record<string, unknown>; prompt: string } | { problem: JobProblem } {
  const loaded = loadChatTemplate(config.chat_template, path.isAbsolute(config.model) ? config.model : null);
  if (!loaded.ok) return unusable(loaded.message, config.chat_template);
  const record: Record<string, unknown> =
    config.data.format === 'sharegpt' ? { conversations: [{ from: 'human', value: text }] }
    : config.data.format === 'alpaca' ? { instruction: text }
    : { messages: [{ role: 'user', content: text }] };
  try {
    return { variable: null, record, prompt: loaded.template.prompt([{ role: 'user', content: text }]) };
  } catch (error) {
    return unusable((error as Error).message, config.chat_template);
  }
}
