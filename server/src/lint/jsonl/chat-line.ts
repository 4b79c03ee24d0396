/**
 * A chat record's line facts (docs/chat-datasets.md): its turns and their problems, the conversation cut into
 * trained and untrained segments by the chat template, and token counts — each segment tokenized on its own, no
 * special tokens added (the template writes them), as the engine counts.
 */
import { conversationParts, toTurns } from '../../templates/chat';
import type { ChatLine, LineInput } from '../rule';
import type { ChatSetup, DatasetContext } from './dataset-config';

export function deriveChat(input: LineInput, record: Record<string, unknown>, chat: ChatSetup, ctx: DatasetContext): void {
  const { turns, problems } = toTurns(record, chat.format);
  const line: ChatLine = { turns, problems, segments: null, prompt: null, counts: null };
  input.chat = line;
  if (problems.length > 0 || !chat.template) return;
  try {
    const parts = conversationParts(chat.template, turns);
    line.segments = parts.segments;
    line.prompt = parts.prompt;
  } catch (error) {
    input.renderError = (error as Error).message;
    return;
  }
  const tok = ctx.tokenizer;
  if (!tok) return;
  let total = 0;
  let trained = 0;
  for (const s of line.segments) {
    const n = tok.count(s.text);
    total += n;
    if (s.trained) trained += n;
  }
  line.counts = { total, trained, prompt: ctx.role === 'test' ? tok.count(line.prompt) : null };
  input.counts = { prompt: total - trained, response: trained };
}
