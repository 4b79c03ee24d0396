/** How `train` shows a run: human text (progress bar on a TTY) or one JSON object per event (`--json`). */
import type {
  TrainDidCheckpointParams,
  TrainDidEndParams,
  TrainDidEvalParams,
  TrainDidProgressParams,
  TrainDidStageParams,
  TrainStartResult,
} from '../../../protocol/engine';
import { displayPath } from '../config/errors';
import type { BestCheckpoint } from '../../../protocol/run-folder';
import { formatEngineError, writeJson } from './subcommand';
import { ProgressLine, type Output } from './output';

export interface RunSummary {
  end: TrainDidEndParams;
  runDir: string;
  /** run.json's best checkpoint (train.best_metric), when the run kept one. */
  best: BestCheckpoint | null;
  /** The command that continues this run, when it can be resumed. */
  resumeCommand: string | null;
  logFile: string;
}

export interface TrainView {
  started(result: TrainStartResult, resumed: boolean): void;
  stage(p: TrainDidStageParams): void;
  progress(p: TrainDidProgressParams): void;
  evaluated(p: TrainDidEvalParams): void;
  checkpoint(p: TrainDidCheckpointParams): void;
  /** Something the user should know now (cancelling, engine stopped). */
  note(message: string): void;
  ended(summary: RunSummary): void;
}

export class JsonTrainView implements TrainView {
  constructor(private readonly out: Output) {}
  started(result: TrainStartResult, resumed: boolean): void {
    writeJson(this.out, { event: 'start', ...result, resumed });
  }
  stage(p: TrainDidStageParams): void {
    writeJson(this.out, { event: 'stage', ...p });
  }
  progress(p: TrainDidProgressParams): void {
    writeJson(this.out, { event: 'progress', ...p });
  }
  evaluated(p: TrainDidEvalParams): void {
    writeJson(this.out, { event: 'eval', ...p });
  }
  checkpoint(p: TrainDidCheckpointParams): void {
    writeJson(this.out, { event: 'checkpoint', ...p });
  }
  note(message: string): void {
    writeJson(this.out, { event: 'note', message });
  }
  ended(s: RunSummary): void {
    writeJson(this.out, { event: 'end', ...s.end, run_dir: s.runDir, adapter: s.end.adapterPath, best: s.best, log: s.logFile });
  }
}

export class TextTrainView implements TrainView {
  private readonly line: ProgressLine;
  private downloading = false;
  constructor(
    out: Output,
    private readonly err: Output,
    private readonly cwd: string,
  ) {
    this.line = new ProgressLine(out);
  }

  private show(file: string): string {
    return displayPath(file, this.cwd);
  }

  started(r: TrainStartResult, resumed: boolean): void {
    const d = r.data;
    const verb = resumed ? `Resuming run ${r.runId} at step ${r.startStep}` : `Run ${r.runId}`;
    this.line.log(`${verb} → ${this.show(r.runDir)}  (${r.totalSteps} steps)`);
    let data = `Data: ${d.trainRecords} training records`;
    if (d.trainSequences !== d.trainRecords) data += ` in ${d.trainSequences} packed sequences`;
    data += `, ${d.validationRecords} validation`;
    if (d.droppedTooLong > 0) data += `; ${d.droppedTooLong} dropped (prompt + response reach max_length)`;
    this.line.log(data);
  }
  stage(p: TrainDidStageParams): void {
    if (p.download) {
      if (!this.downloading) this.line.log(`• ${p.message || p.stage}`);
      this.downloading = true;
      this.line.download(p.download);
      return;
    }
    if (this.downloading) this.line.done(); // the download's last bar stays above the next stage
    this.downloading = false;
    this.line.log(`• ${p.message || p.stage}`);
  }
  progress(p: TrainDidProgressParams): void {
    this.line.progress(p);
  }
  evaluated(p: TrainDidEvalParams): void {
    let text = `  eval at step ${p.step}: loss ${p.evalLoss.toFixed(4)} on ${p.evalRecords} records`;
    if (p.rouge) {
      const r = p.rouge;
      text += `; ROUGE-1 ${r.rouge1.toFixed(4)} ROUGE-2 ${r.rouge2.toFixed(4)} ROUGE-L ${r.rougeL.toFixed(4)} ROUGE-Lsum ${r.rougeLsum.toFixed(4)} on ${p.rougeRecords ?? '?'}`;
    }
    if (p.best) text += '  (best so far)';
    this.line.log(text);
  }
  checkpoint(p: TrainDidCheckpointParams): void {
    this.line.log(`  checkpoint at step ${p.step}: ${this.show(p.path)}`);
  }
  note(message: string): void {
    this.line.log(message);
  }
  ended(s: RunSummary): void {
    this.line.done();
    const { end } = s;
    const write = (text: string): unknown => (end.status === 'completed' ? this.line.log(text) : this.err.write(`${text}\n`));
    if (end.status === 'completed') {
      write(`Completed at step ${end.step}.`);
      if (end.adapterPath) write(`Adapter: ${this.show(end.adapterPath)}`);
      if (s.best) write(`Best: step ${s.best.step} by ${s.best.metric} ${s.best.value.toFixed(4)}: ${this.show(s.best.adapterPath)}`);
    } else if (end.status === 'cancelled') {
      write(`Cancelled at step ${end.step}.`);
    } else {
      const reason = end.error ? formatEngineError(end.error, this.cwd) : 'unknown error';
      write(`Failed at step ${end.step}: ${reason}`);
      if (end.error?.remedy) write(`  ${end.error.remedy}`);
      write(`Engine log: ${this.show(s.logFile)}`);
    }
    if (end.status !== 'completed' && end.checkpointPath) write(`Checkpoint: ${this.show(end.checkpointPath)}`);
    if (s.resumeCommand) write(`Resume with: ${s.resumeCommand}`);
  }
}
