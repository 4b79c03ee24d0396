/** The evaluation report: ROUGE base vs adapter with the improvement, then each example side by side. */
import type { ReportView } from '../../protocol/webview';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function renderReport(report: ReportView, runId: string): HTMLElement {
  const root = el('div', 'report');
  root.dataset.runId = runId;
  root.append(el('h2', undefined, `ROUGE on ${report.examples} ${report.split} example${report.examples === 1 ? '' : 's'} — ${runId}`));

  const table = el('table', 'metrics');
  const head = el('tr');
  for (const h of ['metric', 'base model', 'adapter', 'improvement']) head.append(el('th', undefined, h));
  table.append(el('thead'), el('tbody'));
  table.tHead!.append(head);
  for (const m of report.metrics) {
    const tr = el('tr');
    const delta = m.adapter - m.base;
    const relative = m.base > 0 ? ` (${delta >= 0 ? '+' : ''}${((delta / m.base) * 100).toFixed(0)}%)` : '';
    tr.append(
      el('td', undefined, m.name),
      el('td', 'num', (m.base * 100).toFixed(2)),
      el('td', 'num', (m.adapter * 100).toFixed(2)),
      el('td', `num ${delta > 0 ? 'better' : delta < 0 ? 'worse' : ''}`, `${delta >= 0 ? '+' : ''}${(delta * 100).toFixed(2)}${relative}`),
    );
    table.tBodies[0]!.append(tr);
  }
  root.append(table, el('p', 'hint', 'Scores are F-measures ×100; improvement is adapter − base.'));

  if (report.samples.length) {
    root.append(el('h2', undefined, 'Examples'));
    report.samples.forEach((s, i) => {
      const card = el('details', 'example');
      if (i < 3) card.open = true;
      card.append(el('summary', undefined, `#${i + 1} ${s.reference.slice(0, 90)}${s.reference.length > 90 ? '…' : ''}`));
      const input = el('pre', 'input', s.input);
      const cols = el('div', 'columns');
      for (const [label, text] of [
        ['reference', s.reference],
        ['base model', s.base],
        ['adapter', s.adapter],
      ] as const) {
        const col = el('div', 'column');
        col.append(el('h4', undefined, label), el('p', undefined, text || '(empty)'));
        cols.append(col);
      }
      card.append(input, cols);
      root.append(card);
    });
  }
  return root;
}
