/**
 * The dashboard's data: runs known, full data of the loaded ones, live points merged by step (a progress event
 * for a step already read from metrics.jsonl replaces it, so a chart never shows a step twice), and the model download
 * of a run in its `downloading` stage (gone with the next stage). Pure (no DOM), unit-tested.
 */
import type { DownloadProgress } from '../../protocol/engine';
import type { EvalPoint, HostMessage, RunData, RunInfo, RunStatus, TrainPoint } from '../../protocol/webview';

export interface LoadedRun {
  info: RunInfo;
  config: RunData['config'];
  train: Map<number, TrainPoint>;
  eval: Map<number, EvalPoint>;
  etaSeconds: number | null;
  message: string | null;
  /** The base model's download while the run is in its `downloading` stage; null otherwise. */
  download: DownloadProgress | null;
  report: RunData['report'];
}

export class Store {
  runs: RunInfo[] = [];
  readonly loaded = new Map<string, LoadedRun>();
  /** Stage messages (and downloads) for runs whose data has not arrived yet. */
  private readonly pending = new Map<string, { message: string | null; download: DownloadProgress | null }>();

  /** Applies a host message; returns the run ids whose charts changed ('*' for the run list). */
  apply(message: HostMessage): string[] {
    switch (message.type) {
      case 'runs':
        this.runs = message.runs;
        for (const info of message.runs) {
          const run = this.loaded.get(info.runId);
          // The list is read from disk: keep a live status the disk has not caught up with yet.
          if (run) run.info = { ...info, status: run.info.status === 'running' && info.status !== 'completed' && info.status !== 'failed' && info.status !== 'cancelled' ? 'running' : info.status };
        }
        return ['*'];
      case 'runData': {
        const d = message.data;
        const previous = this.loaded.get(d.info.runId);
        const run: LoadedRun = {
          info: d.info,
          config: d.config,
          train: new Map(d.train.map((p) => [p.step, p])),
          eval: new Map(d.eval.map((p) => [p.step, p])),
          etaSeconds: d.etaSeconds,
          message: previous?.message ?? this.pending.get(d.info.runId)?.message ?? null,
          download: previous ? previous.download : (this.pending.get(d.info.runId)?.download ?? null),
          report: d.report,
        };
        // Live points that arrived before the disk read finished.
        if (previous) {
          for (const [step, p] of previous.train) if (!run.train.has(step)) run.train.set(step, p);
          for (const [step, p] of previous.eval) if (!run.eval.has(step)) run.eval.set(step, p);
        }
        this.pending.delete(d.info.runId);
        this.loaded.set(d.info.runId, run);
        this.upsertInfo(d.info);
        return [d.info.runId];
      }
      case 'progress': {
        const run = this.loaded.get(message.runId);
        if (!run) return [];
        run.train.set(message.point.step, message.point);
        run.etaSeconds = message.etaSeconds;
        run.info = { ...run.info, status: 'running', step: message.point.step, totalSteps: message.totalSteps };
        run.message = null;
        run.download = null;
        return [message.runId];
      }
      case 'evalPoint': {
        const run = this.loaded.get(message.runId);
        if (!run) return [];
        run.eval.set(message.point.step, message.point);
        return [message.runId];
      }
      case 'status': {
        const run = this.loaded.get(message.runId);
        const listed = this.runs.find((r) => r.runId === message.runId);
        if (listed) listed.status = message.status;
        const download = message.status === 'running' ? message.download : null;
        if (!run) {
          this.pending.set(message.runId, { message: message.message, download });
          return ['*'];
        }
        run.info = { ...run.info, status: message.status };
        run.message = message.message;
        run.download = download;
        if (message.status !== 'running') run.etaSeconds = null;
        return [message.runId, '*'];
      }
      case 'show':
        return [];
    }
  }

  private upsertInfo(info: RunInfo): void {
    const i = this.runs.findIndex((r) => r.runId === info.runId);
    if (i >= 0) this.runs[i] = info;
    else this.runs.unshift(info);
  }

  /** Points of one series of a run, sorted by step, nulls dropped. */
  series(runId: string, key: SeriesKey): [number[], number[]] {
    const run = this.loaded.get(runId);
    if (!run) return [[], []];
    const xs: number[] = [];
    const ys: number[] = [];
    if (key === 'evalLoss') {
      for (const p of [...run.eval.values()].sort((a, b) => a.step - b.step)) {
        xs.push(p.step);
        ys.push(p.evalLoss);
      }
    } else {
      for (const p of [...run.train.values()].sort((a, b) => a.step - b.step)) {
        const v = p[key];
        if (v === null || v === undefined) continue;
        xs.push(p.step);
        ys.push(v);
      }
    }
    return [xs, ys];
  }

  /**
   * Each GPU's peak memory by step, one series per GPU in rank order (runs on more than one GPU; none otherwise).
   * A step logged without the list leaves a gap in every series.
   */
  deviceSeries(runId: string): [number[], number[]][] {
    const run = this.loaded.get(runId);
    if (!run) return [];
    const out: [number[], number[]][] = [];
    for (const p of [...run.train.values()].sort((a, b) => a.step - b.step)) {
      (p.gpuMemoryPerDevice ?? []).forEach((bytes, gpu) => {
        while (out.length <= gpu) out.push([[], []]);
        out[gpu]![0].push(p.step);
        out[gpu]![1].push(bytes);
      });
    }
    return out;
  }

  /** How many devices the run trains on: the config's count, or as many as its progress reports GPUs for. */
  devices(runId: string): number {
    const run = this.loaded.get(runId);
    if (!run) return 1;
    let n = run.config?.devices ?? 1;
    for (const p of run.train.values()) n = Math.max(n, p.gpuMemoryPerDevice?.length ?? 0);
    return n;
  }

  /** The default selection: a running run, else the newest. */
  defaultSelection(): string[] {
    const running = this.runs.find((r) => r.status === 'running');
    const first = running ?? this.runs[0];
    return first ? [first.runId] : [];
  }
}

export type SeriesKey = 'loss' | 'evalLoss' | 'learningRate' | 'gradNorm' | 'tokensPerSecond' | 'gpuMemoryBytes';

export const statusLabel: Record<RunStatus, string> = {
  pending: 'pending',
  running: 'running',
  completed: 'completed',
  cancelled: 'cancelled',
  failed: 'failed',
  unknown: 'interrupted',
};
