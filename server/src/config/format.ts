/**
 * `data.format` (docs/chat-datasets.md): `auto` resolved — the prompt template when `template` is set, else the chat
 * format of the first training record — and the rules between the format, `template`, `chat_template` and
 * `eval.references`. The engine applies the same rules (engine/qlora_engine/config.py, chat.py's resolve_format).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHAT_FORMATS, type ChatFormat, type DataFormat, type ResolvedConfig } from '../../../protocol/config';
import { detectFormat } from '../templates/chat';

export interface FormatProblem {
  segments: string[];
  message: string;
}

/** The config's data format, or the problem that leaves none; `config.data.format` may still say `auto`. */
export function resolveDataFormat(config: ResolvedConfig): { format: DataFormat } | { problem: FormatProblem } {
  const raw = config.data.format as DataFormat | 'auto';
  const chat = CHAT_FORMATS.includes(raw as ChatFormat);
  if (chat && config.template !== null) {
    return problem(['template'], `is a prompt template, which data.format ${raw} does not use: chat records are rendered by the chat template (the model's own, or chat_template:). Remove one of the two.`);
  }
  if (raw === 'template' && config.template === null) {
    return problem(['data', 'format'], 'template needs template: a prompt template file (.prompt.yaml)');
  }
  const templated = raw === 'template' || (raw === 'auto' && config.template !== null);
  if (templated && config.chat_template !== null) {
    return problem(['chat_template'], 'renders chat datasets; this config uses the prompt template instead. Remove chat_template, or template to train on chat records.');
  }
  let format: DataFormat;
  if (templated) format = 'template';
  else if (chat) format = raw as ChatFormat;
  else {
    const first = firstRecord(config.data.train);
    const detected = first ? detectFormat(first) : null;
    if (!detected) {
      const has = first ? Object.keys(first).sort().join(', ') || 'no fields' : 'no readable record';
      return problem(['data', 'format'], `cannot tell the format of ${path.basename(config.data.train)}: its first record has ${has}. Give a prompt template (template:) or name a chat format in data.format (messages, sharegpt, alpaca).`);
    }
    format = detected;
  }
  if (format !== 'template' && config.eval.references !== null) {
    return problem(['eval', 'references'], 'names record fields for prompt templates; chat records are scored against their last assistant turn. Remove eval.references.');
  }
  return { format };
}

function problem(segments: string[], message: string): { problem: FormatProblem } {
  return { problem: { segments, message } };
}

/** The first non-blank line of a JSONL file as an object, or null (the dataset linter says what is wrong). */
function firstRecord(file: string): Record<string, unknown> | null {
  let text: string;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const buffer = Buffer.alloc(1 << 20);
      const read = fs.readSync(fd, buffer, 0, buffer.length, 0);
      text = buffer.subarray(0, read).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
  const line = text.replace(/^\uFEFF/, '').split('\n').find((l) => l.trim() !== '');
  if (line === undefined) return null;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
