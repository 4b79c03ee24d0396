/**
 * The evaluation report (its shape, report.json, is typed in protocol/run-folder.ts): the terminal table, the
 * Markdown rendering (report.md) and the atomic writing of report.{json,md,html} (temp file beside the target + rename).
 * report.html.ts renders the HTML page.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvalFolder, type EvalReport, type Interval } from '../../../protocol/run-folder';
import { generatingNote, renderHtml } from './report.html';

export { METRICS, REPORT_VERSION } from '../../../protocol/run-folder';
export type { EvalReport, EvalSplit, ExampleRow, Interval, MetricName, MetricRow, Prediction } from '../../../protocol/run-folder';

export interface ReportFiles {
  json: string;
  md: string;
  html: string;
}

const f4 = (x: number): string => x.toFixed(4);
const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(4)}`;
const interval = (i: Interval): string => `${f4(i.low)}–${f4(i.high)}`;

/** One line saying what was scored, for the terminal and the documents. */
export function describe(report: EvalReport): string {
  const skipped = report.skipped.length ? `, ${report.skipped.length} skipped (prompt over max_length)` : '';
  return (
    `${report.count} ${report.split} record${report.count === 1 ? '' : 's'} of ${path.basename(report.dataFile)}${skipped}; ` +
    `references: ${report.referenceFields.join(', ')}; greedy, max ${report.generation.maxNewTokens} new tokens`
  );
}

/** The terminal table: mean F of base and adapter with their 95% intervals, and the improvement. */
export function formatTable(report: EvalReport): string {
  const rows = [['metric', 'base (zero-shot)', 'adapter', 'improvement']];
  for (const m of report.metrics) {
    rows.push([m.name, `${f4(m.base)} [${interval(m.baseInterval)}]`, `${f4(m.adapter)} [${interval(m.adapterInterval)}]`, signed(m.improvement)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
  return (
    `ROUGE (mean F; [bootstrap ${Math.round(report.rouge.bootstrap.confidence * 100)}% interval]) on ${describe(report)}\n\n` +
    `${lines.join('\n')}\n`
  );
}

// ---------------------------------------------------------------- Markdown

/**
 * Text shown literally inline (a table cell, a list item): the characters that start inline Markdown or HTML
 * (emphasis, code, links, tags, entities, cell borders) are backslash-escaped everywhere, block markers at the
 * start, and line breaks become <br> so a cell stays one row.
 */
export function mdText(text: string): string {
  return text
    .replace(/[\\`*_[\]<>|~&]/g, (c) => `\\${c}`)
    .replace(/^(\s*)(#{1,6}(?=\s|$)|[+-](?=\s|$)|=+(?=\s*$))/, '$1\\$2')
    .replace(/^(\s*\d+)([.)])/, '$1\\$2')
    .replace(/\r?\n/g, '<br>');
}

/** A fenced block that no backtick run in the text can close early. */
function fenced(text: string): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}text\n${text}\n${fence}`;
}

export function renderMarkdown(report: EvalReport): string {
  const out: string[] = [];
  out.push(`# Evaluation: zero-shot base vs adapter`, '');
  out.push(`- Adapter: \`${report.adapter}\``);
  out.push(`- Model: \`${report.model}\``);
  out.push(`- Data: \`${report.dataFile}\` (${report.split} split, ${report.count} of ${report.records} records scored)`);
  if (report.skipped.length) {
    out.push(`- Skipped (prompt over max_length): ${report.skipped.map((s) => `line ${s.line} (${s.promptTokens} tokens)`).join(', ')}`);
  }
  out.push(`- References: ${report.referenceFields.map((r) => `\`${r}\``).join(', ')} (best F per type over the references)`);
  const g = report.generation;
  out.push(`- Generation: greedy, max ${g.maxNewTokens} new tokens, batch ${g.batchSize}${g.stop.length ? `, stop at ${g.stop.map((s) => JSON.stringify(s)).join(', ')}` : ''}; the same prompts and settings for both`);
  const b = report.rouge.bootstrap;
  out.push(`- ROUGE: ${report.rouge.package}, stemmer ${report.rouge.useStemmer ? 'on' : 'off'}; intervals: bootstrap of the mean F, ${b.samples} resamples, ${Math.round(b.confidence * 100)}%, seed ${b.seed}`);
  out.push(`- Created: ${report.createdAt}; generation took ${report.seconds.base.toFixed(1)} s (base, including loading the model) + ${report.seconds.adapter.toFixed(1)} s (adapter)${generatingNote(report)}`, '');
  out.push('| metric | base (zero-shot) | adapter | improvement | base 95% interval | adapter 95% interval |');
  out.push('|---|---:|---:|---:|---:|---:|');
  for (const m of report.metrics) {
    out.push(`| ${m.name} | ${f4(m.base)} | ${f4(m.adapter)} | ${signed(m.improvement)} | ${interval(m.baseInterval)} | ${interval(m.adapterInterval)} |`);
  }
  out.push('', '## Examples', '');
  for (const e of report.examples) {
    out.push(`### ${e.index + 1}. ${mdText(path.basename(report.dataFile))} line ${e.line}`, '');
    out.push('**Input**', '', fenced(e.input), '');
    out.push('**References**', '');
    e.references.forEach((r, i) => out.push(`${i + 1}. ${mdText(r)}`));
    out.push('');
    out.push('| base (zero-shot) | adapter |', '|---|---|');
    out.push(`| ${mdText(e.base.text) || '*(empty)*'} | ${mdText(e.adapter.text) || '*(empty)*'} |`);
    out.push(`| rouge1 ${f4(e.base.rouge.rouge1)} · rougeL ${f4(e.base.rouge.rougeL)} · ${e.base.newTokens} tokens | rouge1 ${f4(e.adapter.rouge.rouge1)} · rougeL ${f4(e.adapter.rouge.rougeL)} · ${e.adapter.newTokens} tokens |`, '');
  }
  return out.join('\n');
}

// ---------------------------------------------------------------- files

/** Writes `text` to `file` through a temp file in the same folder and a rename: never half a file. */
export function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`);
  try {
    fs.writeFileSync(temp, text);
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}

/** report.json, report.md and report.html in `dir`, each written atomically (the JSON last: it marks completion). */
export function writeReport(dir: string, report: EvalReport): ReportFiles {
  const files = { json: path.join(dir, EvalFolder.json), md: path.join(dir, EvalFolder.markdown), html: path.join(dir, EvalFolder.html) };
  writeAtomic(files.md, renderMarkdown(report));
  writeAtomic(files.html, renderHtml(report));
  writeAtomic(files.json, `${JSON.stringify(report, null, 2)}\n`);
  return files;
}
