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
    const md = (value: string): vscode.MarkdownString => new vscode.MarkdownString().appendText(value.trim() || '…').appendMarkdown('\n\n*generating…*');
    const comments = [new SummaryComment(md(text.adapter), { name: `Adapter · ${run.runId}` }, text.adapter.trim(), 'summary.partial', 'fine-tuned')];
    if (text.base !== null) comments.push(new SummaryComment(md(text.base), { name: 'Base model (no adapter)' }, text.base.trim(), 'summary.partial', 'zero-shot'));
    thread.comments = comments;
  }

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
