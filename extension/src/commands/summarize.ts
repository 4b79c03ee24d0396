/**
 * Summarize Selection with Adapter: the selection goes through the run's own template to the engine; the summary
 * shows beside the selection as a comment thread (adapter, and the base model when comparing), with actions to
 * insert it below the selection, or to toggle the comparison with the base model and summarize again.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import * as L from '../../../protocol/lsp';
import type { RunInfo } from '../../../protocol/webview';
import type { Services } from '.';
import { UserError } from '../context';
import { problemError, requireFolder, requireTrusted } from '../guards';
import { latestCompleted } from '../runs/read';
import { runDirOf } from '../runsTree';
import { setCompareWithBase, settings } from '../settings';

const LastAdapterKey = 'qloraStudio.lastAdapterRun';

class SummaryComment implements vscode.Comment {
  mode = vscode.CommentMode.Preview;
  constructor(
    readonly body: vscode.MarkdownString,
    readonly author: vscode.CommentAuthorInformation,
    readonly text: string,
    readonly contextValue: string,
    readonly label?: string,
  ) {}
}

/** Owns the comment controller and the one summary thread per document. */
export class Summaries implements vscode.Disposable {
  private readonly controller = vscode.comments.createCommentController('qloraStudio.summary', 'QLoRA Studio summaries');
  private readonly threads = new Map<string, vscode.CommentThread>();
  /** What produced each thread, to summarize again (compare toggle). */
  private readonly sources = new WeakMap<vscode.CommentThread, { uri: vscode.Uri; range: vscode.Range; runDir: string }>();

  show(uri: vscode.Uri, range: vscode.Range, run: RunInfo, result: L.GenerateSummarizeResult): vscode.CommentThread {
    this.threads.get(uri.toString())?.dispose();
    const comments: SummaryComment[] = [];
    const md = (text: string, foot: string): vscode.MarkdownString => {
      const m = new vscode.MarkdownString();
      m.appendText(text.trim() || '(the model generated nothing)');
      m.appendMarkdown(`\n\n*${foot}*`);
      return m;
    };
    if (result.adapter) {
      comments.push(new SummaryComment(md(result.adapter.text, `${result.adapter.newTokens} tokens · ${result.seconds.toFixed(1)} s`), { name: `Adapter · ${run.runId}` }, result.adapter.text.trim(), 'summary.adapter', 'fine-tuned'));
    }
    if (result.base) {
      comments.push(new SummaryComment(md(result.base.text, `${result.base.newTokens} tokens`), { name: 'Base model (no adapter)' }, result.base.text.trim(), 'summary.base', 'zero-shot'));
    }
    const thread = this.controller.createCommentThread(uri, range, comments);
    thread.label = `Summary${result.variable ? ` (selection as {{ ${result.variable} }})` : ''}`;
    thread.canReply = false;
    thread.contextValue = result.base ? 'summary.compared' : 'summary';
    thread.collapsibleState = vscode.CommentThreadCollapsibleState.Expanded;
    this.threads.set(uri.toString(), thread);
    this.sources.set(thread, { uri, range, runDir: run.runDir });
    return thread;
  }

  /** The thread an action was invoked on (argument), else the active editor's. */
  threadOf(arg: unknown): vscode.CommentThread | undefined {
    const a = arg as { uri?: unknown; comments?: unknown } | undefined;
    if (a && a.uri instanceof vscode.Uri && Array.isArray(a.comments)) return a as vscode.CommentThread;
    const uri = vscode.window.activeTextEditor?.document.uri;
    return uri ? this.threads.get(uri.toString()) : undefined;
  }

  /** The comment an action was invoked on, else the thread's first (the adapter's). */
  commentOf(arg: unknown): SummaryComment | undefined {
    if (arg instanceof SummaryComment) return arg;
    return this.threadOf(arg)?.comments[0] as SummaryComment | undefined;
  }

  sourceOf(thread: vscode.CommentThread): { uri: vscode.Uri; range: vscode.Range; runDir: string } | undefined {
    return this.sources.get(thread);
  }

  close(thread: vscode.CommentThread): void {
    this.threads.delete(thread.uri.toString());
    thread.dispose();
  }

  dispose(): void {
    this.controller.dispose();
  }
}

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
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Summarizing with ${run.runId}${compareWithBase ? ' and the base model' : ''}…`, cancellable: true },
    (_p, token) => client.request(L.GenerateSummarize, { runDir: run.runDir, text, compareWithBase, maxNewTokens: settings.maxNewTokens() }, token),
  );
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
