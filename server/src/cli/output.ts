/**
 * Terminal output: learning-rate and rate formats (sizes and durations: protocol/format.ts), aligned tables, and
 * the progress line of training steps and model downloads — a bar redrawn in place on a TTY, plain lines otherwise
 * (CI logs, pipes).
 */
import type { DownloadProgress, TrainDidProgressParams } from '../../../protocol/engine';
import { downloadFields, downloadFraction, formatBytes, formatDuration } from '../../../protocol/format';

/** Where the CLI writes; process.stdout / process.stderr satisfy it, tests pass a buffer. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function formatLr(lr: number): string {
  return lr === 0 ? '0' : lr.toExponential(2);
}

export function formatRate(tokensPerSecond: number): string {
  return `${Math.round(tokensPerSecond).toLocaleString('en-US')} tok/s`;
}

/** Rows of cells, left-aligned and padded; `align` marks right-aligned columns. */
export function table(rows: readonly (readonly string[])[], options: { indent?: string; right?: readonly number[] } = {}): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const indent = options.indent ?? '';
  return rows
    .map((row) =>
      indent +
      row
        .map((cell, i) => {
          if (i === row.length - 1 && !options.right?.includes(i)) return cell;
          return options.right?.includes(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * The fields shown for one progress update, shared by the bar and the plain line. On several devices (the progress
 * carries gpuMemoryPerDevice) tokens/s is the total of all of them and memory is each GPU's, in rank order.
 */
export function progressFields(p: TrainDidProgressParams): string[] {
  const several = p.gpuMemoryPerDevice !== undefined;
  const fields = [`loss ${p.loss.toFixed(4)}`, `lr ${formatLr(p.learningRate)}`, `${formatRate(p.tokensPerSecond)}${several ? ' total' : ''}`];
  if (p.gpuMemoryPerDevice) fields.push(`mem ${p.gpuMemoryPerDevice.map(formatBytes).join(' | ')}`);
  else if (p.gpuMemoryBytes !== null) fields.push(`mem ${formatBytes(p.gpuMemoryBytes)}`);
  fields.push(p.step >= p.totalSteps ? `took ${formatDuration(p.elapsedSeconds)}` : `ETA ${formatDuration(p.etaSeconds)}`);
  return fields;
}

/** What a download stopped midway leaves: its bytes, kept in the cache for the next one to resume from. */
export function downloadKept(d: DownloadProgress): string {
  return `${formatBytes(d.bytesDone)} of ${formatBytes(d.bytesTotal)} of ${d.model} are kept in the Hugging Face cache; the next download resumes from there.`;
}

/**
 * One status line at the bottom of a TTY, redrawn in place; `log` prints a line above it.
 * Off a TTY the same calls print plain lines, so a CI log reads as a list of updates.
 */
export class ProgressLine {
  private current: string | null = null;
  private shownTenth = -1;

  constructor(private readonly out: Output) {}

  get interactive(): boolean {
    return this.out.isTTY === true;
  }

  /** A permanent line (stage, eval, checkpoint, warnings). */
  log(line: string): void {
    if (this.interactive && this.current !== null) {
      this.out.write(`\r\x1b[2K${line}\n${this.current}`);
    } else {
      this.out.write(`${line}\n`);
    }
  }

  progress(p: TrainDidProgressParams): void {
    const fields = progressFields(p).join('  ');
    if (!this.interactive) {
      this.out.write(`step ${p.step}/${p.totalSteps}  ${fields}\n`);
      return;
    }
    const counter = `step ${String(p.step).padStart(String(p.totalSteps).length)}/${p.totalSteps}`;
    this.draw(counter, p.totalSteps > 0 ? Math.min(1, p.step / p.totalSteps) : 0, fields);
  }

  /** A model download: the bar on a TTY; off one, a line per tenth of the bytes, so a 5 GB pull logs 11 lines. */
  download(d: DownloadProgress): void {
    const fraction = downloadFraction(d);
    const fields = downloadFields(d).join('  ');
    if (this.interactive) return this.draw(d.model, fraction, fields);
    const tenth = Math.floor(fraction * 10);
    if (tenth === this.shownTenth) return;
    this.shownTenth = tenth;
    this.out.write(`${d.model}  ${Math.floor(fraction * 100)}%  ${fields}\n`);
  }

  private draw(counter: string, fraction: number, fields: string): void {
    const columns = this.out.columns ?? 80;
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    const barWidth = Math.max(10, Math.min(30, columns - counter.length - percent.length - fields.length - 6));
    const filled = Math.round(fraction * barWidth);
    const bar = '█'.repeat(filled) + '░'.repeat(barWidth - filled);
    let line = `${counter} ${bar} ${percent}  ${fields}`;
    if (line.length > columns - 1) line = line.slice(0, Math.max(0, columns - 1));
    this.current = line;
    this.out.write(`\r\x1b[2K${line}`);
  }

  /** Leaves the last bar on screen and moves below it. */
  done(): void {
    if (this.interactive && this.current !== null) this.out.write('\n');
    this.current = null;
    this.shownTenth = -1;
  }
}
