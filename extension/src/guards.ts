/** Checks a command makes before it acts, each failing with a UserError that says what to do. */
import * as vscode from 'vscode';
import type { JobProblem } from '../../protocol/lsp';
import { JobErrorCodes } from '../../protocol/lsp';
import type { RunInfo } from '../../protocol/webview';
import { UserError } from './context';
import { runDirOf, type RunsTree } from './runs-tree';
import { runsFolder, workspaceRoot } from './settings';

/** Training, evaluation and generation run Python chosen by workspace settings: only in trusted workspaces. */
export function requireTrusted(what: string): void {
  if (vscode.workspace.isTrusted) return;
  throw new UserError(
    `${what} is disabled in Restricted Mode: it runs a Python engine with paths and code from this folder. ` +
      'Linting of datasets, templates and configs still works. Trust the folder to enable training, evaluation and generation.',
    [{ title: 'Manage Workspace Trust', command: 'workbench.trust.manage' }],
  );
}

export function requireFolder(): { root: string; runsDir: string } {
  const root = workspaceRoot();
  const runsDir = runsFolder();
  if (!root || !runsDir) {
    throw new UserError('Open a folder first: QLoRA Studio keeps configs, data and runs in the workspace folder.', [
      { title: 'Open Folder', command: 'workbench.action.files.openFolder' },
      { title: 'New Project from Sample', command: 'qloraStudio.newProject' },
    ]);
  }
  return { root, runsDir };
}

/** A JobProblem from the server as a UserError, with the actions that fix it. */
export function problemError(p: JobProblem): UserError {
  const actions: UserError['actions'] = [];
  if (p.code === JobErrorCodes.NoPython) {
    actions.push({ title: 'Set Up Engine Environment', command: 'qloraStudio.setupEngine' });
    actions.push({ title: 'Choose Python', command: 'workbench.action.openSettings', args: ['qloraStudio.pythonPath'] });
  } else if (p.code === JobErrorCodes.EngineFailed) {
    actions.push({ title: 'Show Engine Log', command: 'qloraStudio.showLog' });
  }
  if (p.file) actions.push({ title: 'Open File', command: 'qloraStudio.openLocation', args: [p.file, p.line ?? 1] });
  return new UserError(p.fix ? `${p.message}\n${p.fix}` : p.message, actions);
}

export interface RunPick extends vscode.QuickPickItem {
  run: RunInfo;
}

/** The run a command was invoked on (a Runs view node or a path), else a completed run with an adapter that the
 * user picks; null when the pick is dismissed. */
export async function adapterRunDir(runs: RunsTree, arg: unknown, title: string, none: string): Promise<string | null> {
  const dir = runDirOf(arg);
  if (dir) return dir;
  return (await pickRun(runs, (r) => r.status === 'completed' && r.hasAdapter, title, none))?.runDir ?? null;
}

/** Picks a run (the first matching is the default); UserError when none qualifies. */
export async function pickRun(runs: RunsTree, filter: (r: RunInfo) => boolean, title: string, none: string): Promise<RunInfo | null> {
  runs.refresh();
  const candidates = runs.all.filter(filter);
  if (candidates.length === 0) throw new UserError(none, [{ title: 'Fine-tune Phi-2', command: 'qloraStudio.fineTune' }]);
  if (candidates.length === 1) return candidates[0]!;
  const items: RunPick[] = candidates.map((run) => ({
    run,
    label: run.runId,
    description: `${run.status} · ${run.step}/${run.totalSteps}`,
    detail: run.best ? `best ${run.best.name === 'evalLoss' ? 'eval loss' : 'loss'} ${run.best.value.toFixed(4)}` : undefined,
  }));
  const picked = await vscode.window.showQuickPick(items, { title, placeHolder: 'The first is the newest', matchOnDescription: true });
  return picked?.run ?? null;
}
