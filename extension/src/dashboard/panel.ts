/**
 * The dashboard panel host: one panel, restored after a reload by a serializer. Posts nothing before the webview
 * says `ready`; then sends the run list, answers `load` with run data read from disk, and forwards live events.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { AdapterConfigFile, RunFolder } from '../../../protocol/run-folder';
import type { DashboardState, DashboardTab, HostMessage, RunStatus, WebviewMessage } from '../../../protocol/webview';
import type { Ctx } from '../context';
import type { LiveEvent } from '../live';
import { readRunData, ReportFile } from '../runs/read';
import type { RunsTree } from '../runs-tree';
import { dashboardHtml, webviewOptions } from './html';

export const ViewType = 'qloraStudio.dashboard';

export class Dashboard implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private queue: HostMessage[] = [];
  private panelSubs: vscode.Disposable[] = [];
  private readonly subs: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: Ctx,
    private readonly runs: RunsTree,
  ) {
    this.subs.push(
      vscode.window.registerWebviewPanelSerializer(ViewType, {
        deserializeWebviewPanel: async (panel: vscode.WebviewPanel, _state: DashboardState | undefined) => this.adopt(panel),
      }),
      ctx.live.onDidChange((e) => this.forward(e)),
      runs.onDidChangeTreeData(() => this.postRuns()),
    );
  }

  /** Opens (or reveals) the dashboard, showing these run folders. */
  show(runDirs: readonly string[] = [], tab: DashboardTab | null = null): void {
    if (!this.panel) {
      const panel = vscode.window.createWebviewPanel(ViewType, 'QLoRA Studio Dashboard', vscode.ViewColumn.Active, webviewOptions(this.ctx.extension.extensionUri));
      this.adopt(panel);
    } else {
      this.panel.reveal(undefined, false);
    }
    this.runs.refresh();
    const ids = runDirs.map((dir) => this.runs.all.find((r) => r.runDir === dir)?.runId ?? path.basename(dir));
    // Fresh from disk: a report or the final metrics may have been written since the webview loaded the run.
    for (const dir of runDirs) this.post({ type: 'runData', data: this.read(dir) });
    if (ids.length || tab) this.post({ type: 'show', runIds: ids, tab });
  }

  get visible(): boolean {
    return this.panel?.visible ?? false;
  }

  private adopt(panel: vscode.WebviewPanel): void {
    this.panel = panel;
    this.ready = false;
    panel.iconPath = vscode.Uri.joinPath(this.ctx.extension.extensionUri, 'media', 'icon.svg');
    panel.webview.options = webviewOptions(this.ctx.extension.extensionUri);
    panel.webview.html = dashboardHtml(panel.webview, this.ctx.extension.extensionUri);
    this.panelSubs.push(
      panel.webview.onDidReceiveMessage((m: WebviewMessage) => this.receive(m)),
      // Hidden, the webview's page is discarded (no retainContextWhenHidden); shown again it reloads and says
      // `ready` anew, so messages wait for that.
      panel.onDidChangeViewState((e) => {
        if (!e.webviewPanel.visible) this.ready = false;
      }),
      panel.onDidDispose(() => {
        for (const s of this.panelSubs.splice(0)) s.dispose();
        this.panel = null;
        this.ready = false;
        this.queue = [];
      }),
    );
  }

  private post(message: HostMessage): void {
    if (!this.panel) return;
    if (!this.ready) {
      // Live points need no queue: after `ready` the webview loads its runs from metrics.jsonl, written per step.
      if (message.type === 'progress' || message.type === 'evalPoint') return;
      // Only a run's latest status counts: a download hidden for minutes would otherwise queue thousands.
      if (message.type === 'status') this.queue = this.queue.filter((q) => q.type !== 'status' || q.runId !== message.runId);
      this.queue.push(message);
      return;
    }
    void this.panel.webview.postMessage(message);
  }

  private postRuns(): void {
    if (this.panel) this.post({ type: 'runs', runs: [...this.runs.all] });
  }

  private receive(m: WebviewMessage): void {
    switch (m.type) {
      case 'ready': {
        this.ready = true;
        this.runs.refresh();
        void this.panel?.webview.postMessage({ type: 'runs', runs: [...this.runs.all] } satisfies HostMessage);
        for (const q of this.queue.splice(0)) void this.panel?.webview.postMessage(q);
        return;
      }
      case 'load':
        for (const id of m.runIds) {
          const run = this.runs.all.find((r) => r.runId === id);
          if (run) this.post({ type: 'runData', data: this.read(run.runDir) });
        }
        return;
      case 'cancel':
        void vscode.commands.executeCommand('qloraStudio.cancelRun', this.dirOf(m.runId));
        return;
      case 'evaluate':
        void vscode.commands.executeCommand('qloraStudio.evaluateAdapter', this.dirOf(m.runId));
        return;
      case 'open': {
        const dir = this.dirOf(m.runId);
        if (!dir) return;
        const file = { config: RunFolder.config, adapter: path.join(RunFolder.adapter, AdapterConfigFile), report: ReportFile, log: RunFolder.engineLog }[m.what];
        void vscode.window.showTextDocument(vscode.Uri.file(path.join(dir, file)), { viewColumn: vscode.ViewColumn.Beside }).then(undefined, (e: Error) =>
          vscode.window.showWarningMessage(`Cannot open ${file}: ${e.message}`),
        );
        return;
      }
    }
  }

  /** A run's data from disk, with the live ETA while it trains. */
  private read(runDir: string): ReturnType<typeof readRunData> {
    const live = this.ctx.live.active.find((l) => l.runDir === runDir);
    const data = readRunData(runDir, Boolean(live));
    if (live?.progress) {
      data.etaSeconds = live.progress.etaSeconds;
      data.info.totalSteps = live.progress.totalSteps;
    }
    return data;
  }

  private dirOf(runId: string): string | undefined {
    return this.runs.all.find((r) => r.runId === runId)?.runDir ?? this.ctx.live.byRunId(runId)?.runDir;
  }

  private forward(e: LiveEvent): void {
    if (!this.panel || e.kind === 'engine' || e.kind === 'checkpoint') return;
    const id = e.run.runId;
    switch (e.kind) {
      case 'started':
        this.runs.refresh();
        this.post({ type: 'runData', data: { ...readRunData(e.run.runDir, true), etaSeconds: null } });
        this.post({ type: 'show', runIds: [id], tab: 'charts' });
        return;
      case 'stage':
        this.post({ type: 'status', runId: id, status: 'running', message: e.params.message || e.params.stage, download: e.params.download ?? null });
        return;
      case 'progress': {
        const p = e.params;
        this.post({
          type: 'progress',
          runId: id,
          totalSteps: p.totalSteps,
          etaSeconds: p.etaSeconds,
          point: {
            step: p.step,
            loss: p.loss,
            learningRate: p.learningRate,
            gradNorm: p.gradNorm,
            tokensPerSecond: p.tokensPerSecond,
            gpuMemoryBytes: p.gpuMemoryBytes,
            gpuMemoryPerDevice: p.gpuMemoryPerDevice ?? null,
            elapsedSeconds: p.elapsedSeconds,
          },
        });
        return;
      }
      case 'eval':
        this.post({ type: 'evalPoint', runId: id, point: { step: e.params.step, evalLoss: e.params.evalLoss } });
        return;
      case 'end': {
        const status: RunStatus = e.params.status;
        this.post({ type: 'status', runId: id, status, message: e.params.error?.message ?? null, download: null });
        // The final state (adapter, last metrics) from disk.
        setTimeout(() => {
          this.runs.refresh();
          this.post({ type: 'runData', data: readRunData(e.run.runDir, false) });
        }, 200);
        return;
      }
    }
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
    this.panel?.dispose();
  }
}
