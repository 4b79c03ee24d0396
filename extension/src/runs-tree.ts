/**
 * The Runs view: one item per run folder (status, steps, best metric), children to open its config, adapter,
 * evaluation report and engine log. Refreshed by a file watcher on the runs folder and by live events.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { AdapterConfigFile, RunFolder } from '../../protocol/run-folder';
import type { RunInfo } from '../../protocol/webview';
import { newestCheckpoint } from '../../server/src/runs/registry';
import type { Ctx } from './context';
import { formatDuration } from '../../protocol/format';
import { listRunInfos, ReportFile } from './runs/read';
import { runsFolder } from './settings';

type Node = { kind: 'run'; run: RunInfo } | { kind: 'file'; run: RunInfo; label: string; file: string; icon: string; command: vscode.Command };

const statusIcon: Record<RunInfo['status'], [string, string | undefined]> = {
  running: ['sync~spin', 'charts.blue'],
  completed: ['pass', 'testing.iconPassed'],
  cancelled: ['circle-slash', 'charts.yellow'],
  failed: ['error', 'testing.iconFailed'],
  pending: ['circle-outline', undefined],
  unknown: ['debug-pause', 'charts.yellow'],
};

export class RunsTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private runs: RunInfo[] = [];
  private timer: NodeJS.Timeout | null = null;
  private watcher: vscode.FileSystemWatcher | null = null;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.watch();
    this.subs.push(
      ctx.live.onDidChange((e) => {
        if (e.kind !== 'progress') this.refreshSoon();
        else if (!this.runs.some((r) => r.runDir === e.run.runDir)) this.refreshSoon();
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('qloraStudio.runsDir')) {
          this.watch();
          this.refresh();
        }
      }),
    );
  }

  /** Every run (newest first), as last read. */
  get all(): readonly RunInfo[] {
    if (this.runs.length === 0) this.read();
    return this.runs;
  }

  refresh(): void {
    this.read();
    this.emitter.fire(undefined);
  }

  /** Coalesces bursts (a checkpoint writes many files). */
  refreshSoon(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, 300);
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'file') {
      const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
      item.iconPath = new vscode.ThemeIcon(node.icon);
      item.command = node.command;
      item.tooltip = node.file;
      item.contextValue = 'runFile';
      return item;
    }
    const r = node.run;
    const item = new vscode.TreeItem(r.runId, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = r.runDir;
    const live = this.ctx.live.active.find((l) => l.runDir === r.runDir);
    const step = live?.progress?.step ?? r.step;
    const total = live?.progress?.totalSteps ?? r.totalSteps;
    const best = r.best ? ` · ${r.best.label} ${r.best.value.toFixed(3)}` : '';
    const eta = live?.progress ? ` · ETA ${formatDuration(live.progress.etaSeconds)}` : '';
    const status = live ? 'running' : r.status;
    item.description = `${status} · ${step}/${total || '?'}${best}${eta}`;
    const [icon, color] = statusIcon[status];
    item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
    const tip = new vscode.MarkdownString();
    tip.appendMarkdown(`**${r.runId}** — ${status}\n\nsteps ${step}/${total}`);
    if (r.best) tip.appendMarkdown(`\n\nbest ${r.best.label} ${r.best.value.toFixed(4)} at step ${r.best.step}`);
    if (r.startedAt) tip.appendMarkdown(`\n\nstarted ${r.startedAt}${r.endedAt ? `, ended ${r.endedAt}` : ''}`);
    if (r.error) tip.appendMarkdown(`\n\n$(error) ${r.error}`);
    if (r.stopReason) tip.appendMarkdown(`\n\nstopped at step ${step}: ${r.stopReason}`);
    tip.supportThemeIcons = true;
    item.tooltip = tip;
    const flags = [`run`, status, r.hasAdapter ? 'adapter' : '', r.hasReport ? 'report' : '', hasCheckpoint(r.runDir) ? 'resumable' : ''];
    item.contextValue = flags.filter(Boolean).join('.');
    return item;
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      this.read();
      return this.runs.map((run) => ({ kind: 'run', run }));
    }
    if (node.kind !== 'run') return [];
    const r = node.run;
    const open = (file: string): vscode.Command => ({ title: 'Open', command: 'vscode.open', arguments: [vscode.Uri.file(file)] });
    const children: Node[] = [];
    const config = path.join(r.runDir, RunFolder.config);
    if (fs.existsSync(config)) children.push({ kind: 'file', run: r, label: 'Config', file: config, icon: 'settings-gear', command: open(config) });
    const adapter = path.join(r.runDir, RunFolder.adapter, AdapterConfigFile);
    if (r.hasAdapter) children.push({ kind: 'file', run: r, label: 'Adapter', file: adapter, icon: 'package', command: open(adapter) });
    if (r.hasReport) {
      children.push({
        kind: 'file',
        run: r,
        label: 'Evaluation report',
        file: path.join(r.runDir, ReportFile),
        icon: 'graph',
        command: { title: 'Open Report', command: 'qloraStudio.openRunReport', arguments: [r.runDir] },
      });
    }
    children.push({
      kind: 'file',
      run: r,
      label: 'Dashboard',
      file: r.runDir,
      icon: 'dashboard',
      command: { title: 'Open Dashboard', command: 'qloraStudio.openDashboard', arguments: [r.runDir] },
    });
    const log = path.join(r.runDir, RunFolder.engineLog);
    if (fs.existsSync(log)) children.push({ kind: 'file', run: r, label: 'Engine log', file: log, icon: 'output', command: open(log) });
    return children;
  }

  private read(): void {
    const dir = runsFolder();
    const live = new Set(this.ctx.live.active.map((r) => r.runDir));
    this.runs = dir ? listRunInfos(dir, live) : [];
    void vscode.commands.executeCommand('setContext', 'qloraStudio.hasRuns', this.runs.length > 0);
  }

  private watch(): void {
    this.watcher?.dispose();
    const dir = runsFolder();
    if (!dir) return;
    this.watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(dir), `**/{${RunFolder.record},${RunFolder.metrics},${path.basename(ReportFile)},${AdapterConfigFile}}`));
    const refresh = (): void => this.refreshSoon();
    this.watcher.onDidCreate(refresh);
    this.watcher.onDidChange(refresh);
    this.watcher.onDidDelete(refresh);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.dispose();
    for (const s of this.subs) s.dispose();
    this.emitter.dispose();
  }
}

function hasCheckpoint(runDir: string): boolean {
  return newestCheckpoint(runDir) !== null;
}

/** A command argument that names a run: a tree node, a run folder path, or nothing. */
export function runDirOf(arg: unknown): string | null {
  if (typeof arg === 'string') return arg;
  if (arg && typeof arg === 'object') {
    const node = arg as { run?: RunInfo; runDir?: string };
    if (node.run) return node.run.runDir;
    if (typeof node.runDir === 'string') return node.runDir;
  }
  return null;
}
