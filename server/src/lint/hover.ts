/**
 * Hover on a dataset record: token counts (prompt, response, total vs max_length) and the text exactly as the
 * model sees it, with the tokens that count toward the loss marked ⟦…⟧ (the response and EOS with
 * `loss_on: response`; everything with `loss_on: all`).
 */
import type { DatasetContext } from './jsonl/dataset-config';
import { deriveLine } from './jsonl/derive';

const MAX_SHOWN = 6000;

export function recordHover(lineText: string, line: number, ctx: DatasetContext): string | null {
  const input = deriveLine(lineText.replace(/^\uFEFF/, ''), ctx);
  if (!input.record) return null;
  if (!ctx.template) {
    return `**Record ${line + 1}** — no config names this file, so there is no template or tokenizer to show it through. Add it to a config's \`data\` (or pass \`--config\` on the command line).`;
  }
  if (!input.rendered) {
    const why = input.renderError ?? (input.badFields.length ? `missing or unusable field(s) ${input.badFields.map((f) => `"${f}"`).join(', ')}` : 'the template has errors');
    return `**Record ${line + 1}** — cannot be rendered: ${why}`;
  }
  const { prompt, response } = input.rendered;
  const tok = ctx.tokenizer;
  const n = (x: number): string => x.toLocaleString('en-US');
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
  if (shown.length > MAX_SHOWN) shown = `${shown.slice(0, MAX_SHOWN)}\n… (${n(shown.length - MAX_SHOWN)} more characters)`;
  const fence = '`'.repeat(Math.max(3, longestRun(shown, '`') + 1));
  const footer = input.promptOnly ? 'The model sees this text and generates the rest.' : 'The model sees this text; tokens inside ⟦ ⟧ count toward the loss.';
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
