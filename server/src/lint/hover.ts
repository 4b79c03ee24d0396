/**
 * Hover on a dataset record: token counts (prompt, response, total vs max_length) and the text exactly as the
 * model sees it, with the tokens that count toward the loss marked ⟦…⟧ (the response and EOS with
 * `loss_on: response`; everything with `loss_on: all`). A chat record shows its conversation as the chat template
 * renders it, its assistant turns' trained spans marked.
 */
import * as path from 'node:path';
import type { DatasetContext } from './jsonl/dataset-config';
import { deriveLine } from './jsonl/derive';
import type { LineInput } from './rule';

const MAX_SHOWN = 6000;

export function recordHover(lineText: string, line: number, ctx: DatasetContext): string | null {
  const input = deriveLine(lineText.replace(/^\uFEFF/, ''), ctx);
  if (!input.record) return null;
  if (input.chat) return chatHover(input, line, ctx);
  if (!ctx.template) {
    return `**Record ${line + 1}** — no config names this file, so there is no template or tokenizer to show it through. Add it to a config's \`data\` (or pass \`--config\` on the command line).`;
  }
  if (!input.rendered) {
    const why = input.renderError ?? (input.badFields.length ? `missing or unusable field(s) ${input.badFields.map((f) => `"${f}"`).join(', ')}` : 'the template has errors');
    return `**Record ${line + 1}** — cannot be rendered: ${why}`;
  }
  const { prompt, response } = input.rendered;
  const tok = ctx.tokenizer;
  const head: string[] = [];
  let shown: string;
  if (tok && input.counts && input.promptOnly) {
    const limit = ctx.maxLength;
    head.push(`**Record ${line + 1}**: prompt ${n(input.counts.prompt)} tokens${limit !== null ? ` of max_length ${n(limit)}` : ''} · ${tok.engine}`);
    head.push("test split: only the prompt is rendered (the record has no fields for the template's response; its references are evaluated as they are)");
    shown = `${tok.bosId !== null ? tok.tokenTexts([tok.bosId]).join('') : ''}${prompt}`;
  } else if (tok && input.counts) {
    const c = input.counts;
    const total = c.prompt + c.response;
    const limit = ctx.maxLength;
    const over = limit !== null && total > limit ? ` — **over max_length by ${n(total - limit)}** (training drops it)` : '';
    const lossTokens = ctx.lossOn === 'all' ? total : c.response;
    head.push(`**Record ${line + 1}**: ${n(total)} tokens${limit !== null ? ` of max_length ${n(limit)}` : ''}${over}`);
    head.push(`prompt ${n(c.prompt)} + response ${n(c.response)} (incl. EOS) · ${n(lossTokens)} token${lossTokens === 1 ? '' : 's'} count toward the loss (\`loss_on: ${ctx.lossOn}\`) · ${tok.engine}`);
    const bos = tok.bosId !== null ? tok.tokenTexts([tok.bosId]).join('') : '';
    const eos = tok.eosToken ?? '';
    shown = ctx.lossOn === 'all' ? `⟦${bos}${prompt}${response}${eos}⟧` : `${bos}${prompt}⟦${response}${eos}⟧`;
  } else {
    head.push(`**Record ${line + 1}** (no tokenizer: ${ctx.tokenizerProblem ?? 'none loaded'})`);
    shown = input.promptOnly ? prompt : ctx.lossOn === 'all' ? `⟦${prompt}${response}⟧` : `${prompt}⟦${response}⟧`;
  }
  const footer = input.promptOnly ? 'The model sees this text and generates the rest.' : 'The model sees this text; tokens inside ⟦ ⟧ count toward the loss.';
  return page(head, shown, footer);
}

/** A chat record: tokens of the whole conversation against max_length, the trained ones, and the rendered text. */
function chatHover(input: LineInput, line: number, ctx: DatasetContext): string {
  const chat = input.chat!;
  const format = ctx.chat!.format;
  if (chat.problems.length > 0) {
    const more = chat.problems.length > 1 ? ` (and ${chat.problems.length - 1} more problem${chat.problems.length > 2 ? 's' : ''})` : '';
    return `**Record ${line + 1}** — not a valid ${format} conversation: ${chat.problems[0]!.message}${more}`;
  }
  if (!chat.segments) return `**Record ${line + 1}** — ${chat.turns.length} turns (${format}), not rendered: ${input.renderError ?? ctx.chat!.problem ?? 'no chat template'}`;
  const c = chat.counts;
  const tok = ctx.tokenizer;
  const head: string[] = [];
  const file = ctx.chat!.template ? ` · chat template ${path.basename(ctx.chat!.template.file)}` : '';
  if (tok && c) {
    const limit = ctx.maxLength;
    const over = limit !== null && c.total > limit ? ` — **over max_length by ${n(c.total - limit)}** (training drops it)` : '';
    // The first token is never a label (docs/chat-datasets.md).
    const lossTokens = ctx.lossOn === 'all' ? Math.max(0, c.total - 1) : c.trained;
    head.push(`**Record ${line + 1}**: ${n(c.total)} tokens${limit !== null ? ` of max_length ${n(limit)}` : ''}${over}`);
    head.push(`${chat.turns.length} turns (${format}) · ${n(lossTokens)} token${lossTokens === 1 ? '' : 's'} trained (\`loss_on: ${ctx.lossOn}\`) · ${tok.engine}${file}`);
    if (c.prompt !== null) head.push(`test split: the prompt (everything before the last assistant turn) is ${n(c.prompt)} tokens`);
  } else {
    head.push(`**Record ${line + 1}**: ${chat.turns.length} turns (${format}) (no tokenizer: ${ctx.tokenizerProblem ?? 'none loaded'})${file}`);
  }
  const text = chat.segments.map((s) => s.text).join('');
  const shown = ctx.lossOn === 'all' ? `⟦${text}⟧` : chat.segments.map((s) => (s.trained ? `⟦${s.text}⟧` : s.text)).join('');
  return page(head, shown, 'The model sees this text, rendered by the chat template; tokens inside ⟦ ⟧ count toward the loss.');
}

const n = (x: number): string => x.toLocaleString('en-US');

function page(head: string[], shown: string, footer: string): string {
  if (shown.length > MAX_SHOWN) shown = `${shown.slice(0, MAX_SHOWN)}\n… (${n(shown.length - MAX_SHOWN)} more characters)`;
  const fence = '`'.repeat(Math.max(3, longestRun(shown, '`') + 1));
  return `${head.join('  \n')}\n\n${fence}text\n${shown}\n${fence}\n\n${footer}`;
}

function longestRun(text: string, ch: string): number {
  let best = 0;
  let run = 0;
  for (const c of text) {
    run = c === ch ? run + 1 : 0;
    best = Math.max(best, run);
  }
  return best;
}
