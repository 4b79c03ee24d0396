/**
 * What an evaluation gives the model and scores against, per record: the prompt, the reference texts and the
 * input the report shows — through the prompt template, or for chat data (docs/chat-datasets.md) through the chat
 * template: the conversation up to its last assistant turn, scored against that turn. The engine renders the same
 * prompts from the same records (generate), byte for byte.
 */
import * as path from 'node:path';
import { CHAT_FORMATS, type ChatFormat, type ResolvedConfig } from '../../../protocol/config';
import { loadChatTemplate, toTurns } from '../templates/chat';
import { renderPrompt } from '../templates/template';
import { checkPromptFields, EvalInputError, loadTemplateInfo, referenceFields, referencesOf, type DataRecord, type TemplateInfo } from './records';

export interface EvalTexts {
  prompts: string[];
  references: string[][];
  /** Where the references come from, for the report (record fields, or the chat turn). */
  referenceFields: string[];
  /** What the report shows as each example's input. */
  inputs: string[];
  stop: string[];
  /** The prompt template or chat template that rendered the prompts. */
  templateFile: string;
}

export function evalTexts(config: ResolvedConfig, records: readonly DataRecord[], file: string): EvalTexts {
  if (CHAT_FORMATS.includes(config.data.format as ChatFormat)) return chatTexts(config, config.data.format as ChatFormat, records, file);
  if (config.template === null) throw new EvalInputError('the config has no template to render prompts with', null, 0, 'template');
  const info = loadTemplateInfo(config.template);
  checkPromptFields(records, info, file);
  const fields = referenceFields(config.eval.references, info, records);
  const prompts = records.map((r) => render(info, r, file));
  return {
    prompts,
    references: referencesOf(records, fields.names, fields.explicit, file),
    referenceFields: fields.names,
    inputs: records.map((r, i) => inputOf(info, r, prompts[i]!)),
    stop: info.template.stop,
    templateFile: config.template,
  };
}

function chatTexts(config: ResolvedConfig, format: ChatFormat, records: readonly DataRecord[], file: string): EvalTexts {
  const loaded = loadChatTemplate(config.chat_template, path.isAbsolute(config.model) ? config.model : null);
  if (!loaded.ok) throw new EvalInputError(loaded.message, config.chat_template, 0, 'chat_template');
  const out: EvalTexts = { prompts: [], references: [], referenceFields: ['the last assistant turn'], inputs: [], stop: loaded.template.stop, templateFile: loaded.template.file };
  for (const record of records) {
    const { turns, problems } = toTurns(record.fields, format);
    if (problems.length > 0) throw new EvalInputError(`${problems[0]!.field}: ${problems[0]!.message}`, file, record.line, problems[0]!.field);
    try {
      out.prompts.push(loaded.template.prompt(turns));
    } catch (error) {
      throw new EvalInputError((error as Error).message, file, record.line, 'chat_template');
    }
    out.references.push([turns.at(-1)!.content]);
    out.inputs.push([...turns].reverse().find((t) => t.role === 'user')!.content);
  }
  return out;
}

function render(info: TemplateInfo, record: DataRecord, file: string): string {
  try {
    return renderPrompt(info.template, record.fields);
  } catch (error) {
    throw new EvalInputError(`the prompt of ${path.basename(info.template.file)} does not render: ${(error as Error).message}`, file, record.line, 'prompt');
  }
}

/** The report's input: the one prompt variable (the dialogue), else the rendered prompt. */
function inputOf(info: TemplateInfo, record: DataRecord, prompt: string): string {
  const names = [...new Set(info.promptVariables)];
  const value = names.length === 1 ? record.fields[names[0]!] : undefined;
  return typeof value === 'string' ? value : prompt;
}
