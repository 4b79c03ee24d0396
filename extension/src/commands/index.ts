/**
 * Every command, one table of factories (registered in one loop by main.ts). A factory gets the services and
 * returns the handler; a handler that cannot run throws a UserError saying why (and what to do).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import * as L from '../../../protocol/lsp';
import { RunFolder } from '../../../protocol/run-folder';
import { UserError } from '../context';
import { adapterRunDir, problemError, requireTrusted } from '../guards';
import { downloadStep, EvalProgress } from '../job-progress';
import { ReportFile } from '../runs/read';
import { runDirOf } from '../runs-tree';
import { settings } from '../settings';
import { checkEnvironment } from './environment';
import { exportMerged } from './export';
import { newProject, setupEngine } from './project';
import type { Services } from './services';
import { closeSummary, insertSummary, summarizeSelection, toggleCompareWithBase } from './summarize';
import { cancelRun, fineTune, resumeRun } from './train';

type Handler = (...args: never[]) => unknown;

const openDashboard = (s: Services) => (arg?: unknown): void => {
  const dir = runDirOf(arg);
  s.dashboard.show(dir ? [dir] : []);
};

const compareRuns = (s: Services) => async (): Promise<void> => {
  s.runs.refresh();
  const items = s.runs.all.map((run) => ({ label: run.runId, description: `${run.status} · ${run.step}/${run.totalSteps}`, run }));
  if (items.length === 0) throw new UserError('No runs yet.');
  const picked = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Compare which runs in the dashboard?' });
  if (picked?.length) s.dashboard.show(picked.map((p) => p.run.runDir), 'charts');
};

const evaluateAdapter = (s: Services) => async (arg?: unknown): Promise<void> => {
  requireTrusted('Evaluating an adapter');
  const dir = await adapterRunDir(s.runs, arg, 'Evaluate which adapter?', 'No completed run with an adapter to evaluate yet.');
  if (!dir) return;
  const client = await s.ctx.requireClient();
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Evaluating ${path.basename(dir)}: base model vs adapter (ROUGE)`, cancellable: true },
    async (progress, token) => {
      const bar = new EvalProgress();
      const subs = [
        client.onNotification(L.EvalDidProgress, (p) => p.runDir === dir && progress.report(bar.step(p))),
        // The base model downloads first when it is not cached yet; cancelling stops the download, which keeps its bytes.
        client.onNotification(L.ModelDidProgress, (p) => p.runDir === dir && p.download && progress.report(downloadStep(p.download))),
      ];
      try {
        return await client.request(L.EvalStart, { runDir: dir, limit: settings.evalLimit() }, token);
      } finally {
        for (const sub of subs) sub.dispose();
      }
    },
  );
  if (result.problem) {
    if (result.problem.code === L.JobErrorCodes.Cancelled) return;
    throw problemError(result.problem);
  }
  s.runs.refresh();
  s.dashboard.show([dir], 'report');
};

const openRunReport = (s: Services) => (arg?: unknown): void => {
  const dir = runDirOf(arg);
  if (!dir) throw new UserError('Pick a run in the Runs view.');
  if (!fs.existsSync(path.join(dir, ReportFile))) throw new UserError(`${path.basename(dir)} has no evaluation report yet.`, [{ title: 'Evaluate Adapter', command: 'qloraStudio.evaluateAdapter', args: [dir] }]);
  s.dashboard.show([dir], 'report');
};

const openRunFile = (file: string) => (_s: Services) => async (arg?: unknown): Promise<void> => {
  const dir = runDirOf(arg);
  if (!dir) throw new UserError('Pick a run in the Runs view.');
  const full = path.join(dir, file);
  if (!fs.existsSync(full)) throw new UserError(`${path.basename(dir)} has no ${file}.`);
  if (file === 'adapter') await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(full)).then(undefined, () => vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(full)));
  else await vscode.window.showTextDocument(vscode.Uri.file(full));
};

const openLocation = () => async (file: string, line = 1): Promise<void> => {
  const editor = await vscode.window.showTextDocument(vscode.Uri.file(file));
  const pos = new vscode.Position(Math.max(0, line - 1), 0);
  editor.selection = new vscode.Selection(pos, pos);
  editor.revealRange(new vscode.Range(pos, pos), vscode.TextEditorRevealType.InCenter);
};

export const commands: Record<string, (s: Services) => Handler> = {
  'qloraStudio.fineTune': fineTune,
  'qloraStudio.summarizeSelection': summarizeSelection,
  'qloraStudio.evaluateAdapter': evaluateAdapter,
  'qloraStudio.exportMerged': exportMerged,
  'qloraStudio.openDashboard': openDashboard,
  'qloraStudio.compareRuns': compareRuns,
  'qloraStudio.cancelRun': cancelRun,
  'qloraStudio.resumeRun': resumeRun,
  'qloraStudio.setupEngine': setupEngine,
  'qloraStudio.checkEnvironment': checkEnvironment,
  'qloraStudio.newProject': newProject,
  'qloraStudio.showLog': (s) => () => s.ctx.log.show(true),
  'qloraStudio.restartServer': (s) => () => s.ctx.restartClient(),
  'qloraStudio.refreshRuns': (s) => () => s.runs.refresh(),
  'qloraStudio.openRunConfig': openRunFile(RunFolder.config),
  'qloraStudio.openRunAdapter': openRunFile(RunFolder.adapter),
  'qloraStudio.openRunLog': openRunFile(RunFolder.engineLog),
  'qloraStudio.openRunReport': openRunReport,
  'qloraStudio.insertSummary': insertSummary,
  'qloraStudio.toggleCompareWithBase': toggleCompareWithBase,
  'qloraStudio.closeSummary': closeSummary,
  'qloraStudio.openLocation': openLocation,
};
