/**
 * Activation: the context that owns every disposable, the views, then the one command table registered in one
 * loop, then the language client (linting works in untrusted workspaces; jobs refuse there, saying why).
 */
import * as vscode from 'vscode';
import { commands } from './commands';
import type { Services } from './commands/services';
import { Summaries } from './summaries';
import { Ctx, UserError } from './context';
import { Dashboard } from './dashboard/panel';
import { RunsTree } from './runs-tree';
import { createStatusBar } from './status';

let ctx: Ctx | null = null;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  ctx = new Ctx(context);
  const runs = new RunsTree(ctx);
  const dashboard = new Dashboard(ctx, runs);
  const summaries = new Summaries();
  const services: Services = { ctx, runs, dashboard, summaries };
  ctx.push(runs, dashboard, summaries, vscode.window.registerTreeDataProvider('qloraStudio.runs', runs), createStatusBar(ctx));

  for (const [id, factory] of Object.entries(commands)) {
    const handler = factory(services) as (...args: unknown[]) => unknown;
    ctx.push(vscode.commands.registerCommand(id, (...args: unknown[]) => run(id, handler, args)));
  }

  ctx.push(
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      void vscode.commands.executeCommand('setContext', 'qloraStudio.trusted', true);
      void ctx?.restartClient();
    }),
  );
  void vscode.commands.executeCommand('setContext', 'qloraStudio.trusted', vscode.workspace.isTrusted);
  await ctx.startClient();
}

/** Runs a command; a UserError becomes a message with its actions, anything else an error with the log. */
async function run(id: string, handler: (...args: unknown[]) => unknown, args: unknown[]): Promise<unknown> {
  try {
    return await handler(...args);
  } catch (error) {
    // Cancelled by the user (a dismissed pick, or a cancelled request: LSP's RequestCancelled).
    if (error instanceof vscode.CancellationError || (error as { code?: unknown })?.code === -32800) return undefined;
    if (error instanceof UserError) {
      const titles = error.actions.map((a) => a.title);
      void vscode.window.showErrorMessage(error.message, ...titles).then((picked) => {
        const action = error.actions.find((a) => a.title === picked);
        if (action) void vscode.commands.executeCommand(action.command, ...(action.args ?? []));
      });
      return undefined;
    }
    const message = error instanceof Error ? error.message : String(error);
    ctx?.log.appendLine(`[extension] ${id} failed: ${error instanceof Error ? (error.stack ?? message) : message}`);
    void vscode.window.showErrorMessage(`QLoRA Studio: ${message}`, 'Show Log').then((p) => p && ctx?.log.show(true));
    return undefined;
  }
}

export async function deactivate(): Promise<void> {
  await ctx?.dispose();
  ctx = null;
}
