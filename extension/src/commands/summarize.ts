/**
 * Summarize Selection with Adapter: the selection goes through the run's own template to the engine; the summary
 * shows beside the selection as a comment thread (adapter, and the base model when comparing), with actions to
 * insert it below the selection, or to toggle the comparison with the base model and summarize again.
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import * as vscode from 'vscode';
import * as L from '../../../protocol/lsp';
import type { RunInfo } from '../../../protocol/webview';
import type { Services } from './services';
import { UserError } from '../context';
import { problemError, requireFolder, requireTrusted } from '../guards';
import { downloadStep } from '../job-progress';
import { latestCompleted } from '../runs/read';
import { runDirOf } from '../runs-tree';
import { setCompareWithBase, settings } from '../settings';

const LastAdapterKey = 'qloraStudio.lastAdapterRun';

/** JSONL selections arrive as JSON string content (`\n` escaped): unescape them to the text the model trained on. */
export function selectionText(raw: string): string {
  const text = raw.trim().replace(/^"|",?$/g, '');
  if (!raw.includes('\n') && /\\[n"\\/tu]/.test(text)) {
    try {
      return JSON.parse(`"${text}"`) as string;
    } catch {
      return text.replace(/\\n/g, '\n');
    }
  }
  return raw.trim();
}

async function chooseRun(s: Services, arg: unknown): Promise<RunInfo> {
  s.runs.refresh();
  const dir = runDirOf(arg);
  const completed = s.runs.all.filter((r) => r.status === 'completed' && r.hasAdapter);
  if (dir) {
    const run = s.runs.all.find((r) => r.runDir === dir);
    if (!run?.hasAdapter) throw new UserError(`The run ${path.basename(dir)} has no adapter yet: it is written when training completes.`);
    return run;
  }
  if (completed.length === 0) {
    throw new UserError('No completed run with an adapter yet. Fine-tune first; the newest completed run is used by default.', [{ title: 'Fine-tune Phi-2', command: 'qloraStudio.fineTune' }]);
  }
  const last = s.ctx.extension.workspaceState.get<string>(LastAdapterKey);
  const fallback = completed.find((r) => r.runDir === last) ?? latestCompleted(completed)!;
  if (completed.length === 1) return fallback;
  const items = [fallback, ...completed.filter((r) => r !== fallback)].map((run, i) => ({
    run,
    label: run.runId,
    description: i === 0 ? (run.runDir === last ? 'last used' : 'latest completed') : undefined,
    detail: run.best ? `best ${run.best.name === 'evalLoss' ? 'eval loss' : 'loss'} ${run.best.value.toFixed(4)} · ${run.step} steps` : `${run.step} steps`,
  }));
  const picked = await vscode.window.showQuickPick(items, { title: 'Summarize with which adapter?', placeHolder: 'Enter takes the first' });
  if (!picked) throw new vscode.CancellationError();
  return picked.run;
}

async function runSummarize(s: Services, uri: vscode.Uri, range: vscode.Range, text: string, run: RunInfo, compareWithBase: boolean): Promise<void> {
  const client = await s.ctx.requireClient();
  // The summary streams into the comment thread as it is generated; the final result replaces it.
  const streamId = randomUUID();
  const sofar = { adapter: '', base: compareWithBase ? '' : null } as { adapter: string; base: string | null };
  const streaming = client.onNotification(L.GenerateDidStream, (u) => {
    if (u.streamId !== streamId) return;
    if (u.base) sofar.base = u.text;
    else sofar.adapter = u.text;
    s.summaries.showPartial(uri, range, run, sofar);
  });
  let result: L.GenerateSummarizeResult;
  let downloading: vscode.Disposable | undefined; // the base model's bytes, when it is not in the cache yet
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Summarizing with ${run.runId}${compareWithBase ? ' and the base model' : ''}…`, cancellable: true },
      (progress, token) => {
        downloading = client.onNotification(L.ModelDidProgress, (p) => p.runDir === run.runDir && p.download && progress.report(downloadStep(p.download)));
        return client.request(L.GenerateSummarize, { runDir: run.runDir, text, compareWithBase, maxNewTokens: settings.maxNewTokens(), streamId }, token);
      },
    );
  } finally {
    streaming.dispose();
    downloading?.dispose();
  }
  if (result.problem?.code === L.JobErrorCodes.Cancelled) return; // a download stopped keeps its bytes for the next time
  if (result.problem) throw problemError(result.problem);
  await s.ctx.extension.workspaceState.update(LastAdapterKey, run.runDir);
  s.summaries.show(uri, range, run, result);
}

export function summarizeSelection(s: Services) {
  return async (arg?: unknown): Promise<void> => {
    requireTrusted('Summarizing with an adapter');
    requireFolder();
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.selection.isEmpty) throw new UserError('Select the text to summarize (a dialogue) in an editor first.');
    const text = selectionText(editor.document.getText(editor.selection));
    if (!text) throw new UserError('The selection is empty.');
    const run = await chooseRun(s, arg);
    const range = new vscode.Range(editor.selection.start, editor.selection.end);
    await runSummarize(s, editor.document.uri, range, text, run, settings.compareWithBase());
  };
}

export function insertSummary(s: Services) {
  return async (arg?: unknown): Promise<void> => {
    const comment = s.summaries.commentOf(arg);
    const thread = s.summaries.threadOf(arg);
    if (!comment || !thread) throw new UserError('No summary to insert: run Summarize Selection with Adapter first.');
    const source = s.summaries.sourceOf(thread);
    const editor = await vscode.window.showTextDocument(thread.uri);
    const range = source?.range ?? thread.range ?? editor.selection;
    // A selection that ends at the start of a line (whole lines selected) ends on the line before.
    const lastLine = range.end.character === 0 && range.end.line > range.start.line ? range.end.line - 1 : range.end.line;
    const at = editor.document.lineAt(lastLine).range.end;
    const ok = await editor.edit((b) => b.insert(at, `\n${comment.text}`));
    if (!ok) return;
    const end = editor.document.lineAt(lastLine + 1).range.end;
    editor.selection = new vscode.Selection(end, end);
    s.summaries.close(thread);
  };
}

export function toggleCompareWithBase(s: Services) {
  return async (arg?: unknown): Promise<void> => {
    const next = !settings.compareWithBase();
    await setCompareWithBase(next);
    const thread = s.summaries.threadOf(arg);
    const source = thread && s.summaries.sourceOf(thread);
    if (!source) {
      void vscode.window.showInformationMessage(`Summaries ${next ? 'now also' : 'no longer'} compare with the base model.`);
      return;
    }
    requireTrusted('Summarizing with an adapter');
    const doc = await vscode.workspace.openTextDocument(source.uri);
    const run = s.runs.all.find((r) => r.runDir === source.runDir);
    if (!run) throw new UserError(`The run ${path.basename(source.runDir)} is gone.`);
    await runSummarize(s, source.uri, source.range, selectionText(doc.getText(source.range)), run, next);
  };
}

export function closeSummary(s: Services) {
  return (arg?: unknown): void => {
    const thread = s.summaries.threadOf(arg);
    if (thread) s.summaries.close(thread);
  };
}
