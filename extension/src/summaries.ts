/** The summaries view: one comment thread per document holding the adapter's summary (and the base model's). */
import * as vscode from 'vscode';
import type * as L from '../../protocol/lsp';
import type { RunInfo } from '../../protocol/webview';

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

/** One side's comment (the adapter's or the base model's): its text, or `empty`, above a footnote. */
function sideComment(base: boolean, run: RunInfo, text: string, empty: string, foot: string, contextValue: string): SummaryComment {
  const body = new vscode.MarkdownString().appendText(text.trim() || empty).appendMarkdown(`\n\n*${foot}*`);
  const author = { name: base ? 'Base model (no adapter)' : `Adapter · ${run.runId}` };
  return new SummaryComment(body, author, text.trim(), contextValue, base ? 'zero-shot' : 'fine-tuned');
}

/** Owns the comment controller and the one summary thread per document. */
export class Summaries implements vscode.Disposable {
  private readonly controller = vscode.comments.createCommentController('qloraStudio.summary', 'QLoRA Studio summaries');
  private readonly threads = new Map<string, vscode.CommentThread>();
  /** What produced each thread, to summarize again (compare toggle). */
  private readonly sources = new WeakMap<vscode.CommentThread, { uri: vscode.Uri; range: vscode.Range; runDir: string }>();
  /** Threads showing a summary still being generated (updated in place, replaced by show()). */
  private readonly partial = new WeakSet<vscode.CommentThread>();

  /** While the summary is generated: the text so far, updated in place as it streams in. */
  showPartial(uri: vscode.Uri, range: vscode.Range, run: RunInfo, text: { adapter: string; base: string | null }): void {
    const key = uri.toString();
    let thread = this.threads.get(key);
    if (!thread || !this.partial.has(thread)) {
      thread?.dispose();
      thread = this.controller.createCommentThread(uri, range, []);
      thread.label = 'Summary (generating…)';
      thread.contextValue = 'summary.partial'; // no insert or compare actions until it is complete
      thread.canReply = false;
      thread.collapsibleState = vscode.CommentThreadCollapsibleState.Expanded;
      this.threads.set(key, thread);
      this.partial.add(thread);
    }
    const comments = [sideComment(false, run, text.adapter, '…', 'generating…', 'summary.partial')];
    if (text.base !== null) comments.push(sideComment(true, run, text.base, '…', 'generating…', 'summary.partial'));
    thread.comments = comments;
  }

  show(uri: vscode.Uri, range: vscode.Range, run: RunInfo, result: L.GenerateSummarizeResult): vscode.CommentThread {
    this.threads.get(uri.toString())?.dispose();
    const comments: SummaryComment[] = [];
    const nothing = '(the model generated nothing)';
    if (result.adapter) {
      comments.push(sideComment(false, run, result.adapter.text, nothing, `${result.adapter.newTokens} tokens · ${result.seconds.toFixed(1)} s`, 'summary.adapter'));
    }
    if (result.base) comments.push(sideComment(true, run, result.base.text, nothing, `${result.base.newTokens} tokens`, 'summary.base'));
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
