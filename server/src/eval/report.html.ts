/**
 * report.html: one self-contained page (inline CSS, no script, no external resource; a CSP meta tag forbids
 * loading any), readable in light and dark (prefers-color-scheme). Every value from the data, the model or the
 * file system goes through `escapeHtml`, so a dialogue containing `<script>` is text.
 */
import * as path from 'node:path';
import type { EvalReport, ExampleRow, MetricRow, Prediction } from '../../../protocol/run-folder';

/** ", of which N s generating (…) and M s loading the model", as far as the report knows them. */
export function generatingNote(report: EvalReport): string {
  const g = report.generating;
  const l = report.loading;
  const loading = l ? ` and ${(l.base + l.adapter).toFixed(1)} s loading the model and the adapter` : '';
  return g ? `, of which ${(g.base + g.adapter).toFixed(1)} s generating (${g.base.toFixed(1)} s base + ${g.adapter.toFixed(1)} s adapter)${loading}` : '';
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const f4 = (x: number): string => x.toFixed(4);

const STYLE = `
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa;
  --base: #9a6700; --adapter: #1a7f37; --bad: #cf222e; --bar-base: #d4a72c; --bar-adapter: #2da44e; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23;
    --base: #d29922; --adapter: #3fb950; --bad: #f85149; --bar-base: #9e6a03; --bar-adapter: #238636; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px; background: var(--bg); color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 18px; margin: 32px 0 12px; } h3 { font-size: 15px; margin: 0 0 8px; }
.muted { color: var(--muted); }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0 20px; }
dl.settings dt { color: var(--muted); } dl.settings dd { margin: 0; overflow-wrap: anywhere; }
table.metrics { border-collapse: collapse; width: 100%; }
table.metrics th, table.metrics td { border-bottom: 1px solid var(--line); padding: 6px 10px; text-align: right; white-space: nowrap; }
table.metrics th:first-child, table.metrics td:first-child { text-align: left; }
td.up { color: var(--adapter); font-weight: 600; } td.down { color: var(--bad); font-weight: 600; }
.bars { width: 220px; } .bar { height: 7px; border-radius: 3px; margin: 2px 0; }
.bar.base { background: var(--bar-base); } .bar.adapter { background: var(--bar-adapter); }
section.example { border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 14px 0; background: var(--panel); }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.input { max-height: 18em; overflow: auto; padding: 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); }
ol.refs { margin: 6px 0 10px; padding-left: 22px; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
@media (max-width: 720px) { .side { grid-template-columns: 1fr; } }
.pred { border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: var(--bg); }
.pred h4 { margin: 0 0 4px; font-size: 13px; } .pred.base h4 { color: var(--base); } .pred.adapter h4 { color: var(--adapter); }
.pred .score { font-size: 12px; color: var(--muted); margin-top: 6px; }
.empty { color: var(--muted); font-style: italic; }
`;

function metricRow(m: MetricRow): string {
  const width = (x: number): string => `${Math.max(0, Math.min(100, x * 100)).toFixed(1)}%`;
  const cls = m.improvement > 0 ? 'up' : m.improvement < 0 ? 'down' : '';
  const sign = m.improvement >= 0 ? '+' : '−';
  return (
    `<tr><td>${escapeHtml(m.name)}</td><td>${f4(m.base)}</td><td class="muted">${f4(m.baseInterval.low)}–${f4(m.baseInterval.high)}</td>` +
    `<td>${f4(m.adapter)}</td><td class="muted">${f4(m.adapterInterval.low)}–${f4(m.adapterInterval.high)}</td>` +
    `<td class="${cls}">${sign}${f4(Math.abs(m.improvement))}</td>` +
    `<td class="bars"><div class="bar base" style="width:${width(m.base)}"></div><div class="bar adapter" style="width:${width(m.adapter)}"></div></td></tr>`
  );
}

function prediction(kind: 'base' | 'adapter', title: string, p: Prediction): string {
  const text = p.text.trim() === '' ? '<span class="empty">(empty)</span>' : `<pre>${escapeHtml(p.text)}</pre>`;
  return (
    `<div class="pred ${kind}"><h4>${title}</h4>${text}<div class="score">rouge1 ${f4(p.rouge.rouge1)} · rouge2 ${f4(p.rouge.rouge2)} · ` +
    `rougeL ${f4(p.rouge.rougeL)} · ${p.newTokens} new tokens</div></div>`
  );
}

function example(e: ExampleRow, file: string): string {
  const refs = e.references.map((r) => `<li>${escapeHtml(r)}</li>`).join('');
  return (
    `<section class="example" id="example-${e.index + 1}"><h3>${e.index + 1}. <span class="muted">${escapeHtml(file)} line ${e.line}</span></h3>` +
    `<div class="input"><pre>${escapeHtml(e.input)}</pre></div>` +
    `<div class="muted" style="margin-top:8px">References</div><ol class="refs">${refs}</ol>` +
    `<div class="side">${prediction('base', 'Base (zero-shot)', e.base)}${prediction('adapter', 'Adapter', e.adapter)}</div></section>`
  );
}

export function renderHtml(report: EvalReport): string {
  const file = path.basename(report.dataFile);
  const g = report.generation;
  const b = report.rouge.bootstrap;
  const settings: [string, string][] = [
    ['Adapter', report.adapter],
    ['Model', report.model],
    ['Data', `${report.dataFile} (${report.split} split: ${report.count} of ${report.records} records scored)`],
    ['References', `${report.referenceFields.join(', ')} (best F per type over the references)`],
    ['Generation', `greedy, max ${g.maxNewTokens} new tokens, batch ${g.batchSize}${g.stop.length ? `, stop at ${g.stop.map((s) => JSON.stringify(s)).join(', ')}` : ''}; same prompts and settings for both`],
    ['ROUGE', `${report.rouge.package}, stemmer ${report.rouge.useStemmer ? 'on' : 'off'}; intervals: bootstrap of the mean F, ${b.samples} resamples, ${Math.round(b.confidence * 100)}%, seed ${b.seed}`],
    ['Time', `${report.seconds.base.toFixed(1)} s base (including loading the model) + ${report.seconds.adapter.toFixed(1)} s adapter generation${generatingNote(report)}`],
    ['Created', report.createdAt],
  ];
  if (report.skipped.length) {
    settings.splice(3, 0, ['Skipped', report.skipped.map((s) => `line ${s.line} (${s.promptTokens} tokens)`).join(', ') + ' — prompt over max_length']);
  }
  const title = `Evaluation${report.runId ? ` of ${report.runId}` : ''}: base vs adapter`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<dl class="settings">${settings.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
<table class="metrics">
<thead><tr><th>metric</th><th>base (zero-shot)</th><th>95% interval</th><th>adapter</th><th>95% interval</th><th>improvement</th><th></th></tr></thead>
<tbody>${report.metrics.map(metricRow).join('')}</tbody>
</table>
<h2>Examples <span class="muted">(${report.examples.length})</span></h2>
${report.examples.map((e) => example(e, file)).join('\n')}
</body>
</html>
`;
}
