/**
 * Copies engine stderr lines into <run-dir>/engine.log. The run folder only exists once the engine has
 * accepted the inputs, so lines are held in memory until `open` (bad input leaves no folder behind).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export class LogTee {
  private buffered: string[] = [];
  private stream: fs.WriteStream | null = null;
  private closed = false;

  constructor(readonly file: string) {}

  get isOpen(): boolean {
    return this.stream !== null;
  }

  line(text: string): void {
    if (this.closed) return;
    if (this.stream) this.stream.write(`${text}\n`);
    else this.buffered.push(text);
  }

  /** Starts writing (appending: a resumed run keeps its earlier log), flushing what was held. */
  open(): void {
    if (this.stream || this.closed) return;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.stream = fs.createWriteStream(this.file, { flags: 'a' });
    this.stream.on('error', () => {});
    for (const text of this.buffered) this.stream.write(`${text}\n`);
    this.buffered = [];
  }

  close(): Promise<void> {
    this.closed = true;
    this.buffered = [];
    const stream = this.stream;
    this.stream = null;
    if (!stream) return Promise.resolve();
    return new Promise((resolve) => stream.end(resolve));
  }
}
