/** How `eval` shows itself: a progress bar on a TTY (plain lines elsewhere) and the table, or JSON events (`--json`). */
import { displayPath } from '../config/errors';
import type { EvalProgress, PreparedEvaluation } from '../eval/evaluate';
import { formatTable, type EvalReport, type ReportFiles } from '../eval/report';
import type { DownloadProgress } from '../../../protocol/engine';
import { writeJson } from './subcommand';
import { ProgressLine, type Output } from './output';

export interface EvalView {
  started(prepared: PreparedEvaluation): void;
  /** The base model's weights downloading (a hub model not yet in the cache), before the first generation. */
  download(d: DownloadProgress): void;
  progress(p: EvalProgress): void;
  note(message: string): void;
  finished(report: EvalReport, files: ReportFiles): void;
  /** Stopped before the end (cancelled, failed): the bars stay on screen and what follows goes below them. */
  stopped(): void;
}

const PHASE = { base: 'base (zero-shot)', adapter: 'adapter', scoring: 'scoring' } as const;

export class JsonEvalView implements EvalView {
  constructor(private readonly out: Output) {}
  started(p: PreparedEvaluation): void {
    writeJson(this.out, {
      event: 'start',
      adapter: p.adapter,
      run_dir: p.runDir,
      split: p.split,
      data: p.dataFile,
      records: p.records.length,
      skipped: p.skipped,
      references: p.referenceFields,
      out: p.outDir,
    });
  }
  download(d: DownloadProgress): void {
    writeJson(this.out, { event: 'download', ...d });
  }
  progress(p: EvalProgress): void {
    writeJson(this.out, { event: 'progress', ...p });
  }
  note(message: string): void {
    writeJson(this.out, { event: 'note', message });
  }
  finished(report: EvalReport, files: ReportFiles): void {
    const metrics = report.metrics.map(({ name, base, adapter, improvement, baseInterval, adapterInterval }) => ({ name, base, adapter, improvement, baseInterval, adapterInterval }));
    writeJson(this.out, { event: 'end', status: 'completed', count: report.count, skipped: report.skipped.length, metrics, report: files });
  }
  stopped(): void {}
}

export class TextEvalView implements EvalView {
  private bar: string | null = null;
  private lastPlain = '';
  /** The base model's download, drawn as `pull` draws it (a bar on a TTY, a line per tenth elsewhere). */
  private readonly downloads: ProgressLine;
  private downloading = false;

  constructor(
    private readonly out: Output,
    private readonly cwd: string,
  ) {
    this.downloads = new ProgressLine(out);
  }

  private get interactive(): boolean {
    return this.out.isTTY === true;
  }

  private line(text: string): void {
    if (this.downloading) this.downloads.log(text);
    else if (this.interactive && this.bar !== null) this.out.write(`\r\x1b[2K${text}\n${this.bar}`);
    else this.out.write(`${text}\n`);
  }

  /** The download's last bar stays above what follows. */
  private downloaded(): void {
    if (!this.downloading) return;
    this.downloads.done();
    this.downloading = false;
  }

  started(p: PreparedEvaluation): void {
    const skipped = p.skipped.length ? `; ${p.skipped.length} skipped, prompt over max_length (lines ${p.skipped.map((s) => s.line).join(', ')})` : '';
    this.line(`Evaluating ${displayPath(p.adapter, this.cwd)} on ${p.records.length} ${p.split} record${p.records.length === 1 ? '' : 's'} of ${displayPath(p.dataFile, this.cwd)}${skipped}`);
    this.line(`References: ${p.referenceFields.join(', ')}; greedy, max ${p.maxNewTokens} new tokens, batch ${p.batchSize}`);
  }

  download(d: DownloadProgress): void {
    // The evaluation's bar (drawn at 0 before the first batch asked for the model) gives its line to the download's.
    if (!this.downloading && this.interactive && this.bar !== null) this.out.write('\r\x1b[2K');
    this.downloading = true;
    this.downloads.download(d);
  }

  progress(p: EvalProgress): void {
    this.downloaded();
    if (p.phase === 'scoring') return;
    const label = PHASE[p.phase].padEnd(16);
    const counter = `${String(p.done).padStart(String(p.total).length)}/${p.total} records`;
    if (!this.interactive) {
      const text = `${label} ${counter}`;
      if (text !== this.lastPlain) this.out.write(`${text}\n`);
      this.lastPlain = text;
      return;
    }
    const fraction = p.total > 0 ? p.done / p.total : 1;
    const width = Math.max(10, Math.min(30, (this.out.columns ?? 80) - label.length - counter.length - 10));
    const filled = Math.round(fraction * width);
    this.bar = `${label} ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${`${Math.floor(fraction * 100)}%`.padStart(4)}  ${counter}`;
    this.out.write(`\r\x1b[2K${this.bar}`);
    if (p.done === p.total) {
      this.out.write('\n');
      this.bar = null;
    }
  }

  note(message: string): void {
    this.line(message);
  }

  stopped(): void {
    this.downloaded();
    if (this.bar !== null) this.out.write('\n');
    this.bar = null;
  }

  finished(report: EvalReport, files: ReportFiles): void {
    this.stopped();
    this.out.write(`\n${formatTable(report)}\n`);
    this.out.write(`Report: ${displayPath(files.md, this.cwd)}, ${displayPath(files.html, this.cwd)}, ${displayPath(files.json, this.cwd)}\n`);
  }
}
