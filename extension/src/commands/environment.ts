/**
 * Check Environment (the walkthrough's first step): the engine's environment report as one notification — the GPU
 * and its free memory, the NVIDIA driver, the torch build — with the one next action as its button (readiness.ts
 * decides which).
 */
import * as vscode from 'vscode';
import * as L from '../../../protocol/lsp';
import { verdict, type NextAction } from '../readiness';
import type { Services } from './services';

export function checkEnvironment(s: Services) {
  return async (): Promise<void> => {
    const client = await s.ctx.requireClient();
    const env = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'QLoRA Studio: checking the GPU and the engine…' }, () =>
      client.request(L.EnvCheck, { probe: true }),
    );
    const v = verdict(env, process);
    const message = v.found ? `${v.headline} ${v.found}` : v.headline;
    s.ctx.log.appendLine(`[extension] check environment (Python: ${env.python ?? 'none'}): ${message}${env.problem?.fix ? `\n  ${env.problem.fix}` : ''}`);
    const shown = v.state === 'ready' ? vscode.window.showInformationMessage(message, v.action.title) : vscode.window.showWarningMessage(message, v.action.title);
    // Not awaited: the command (and the walkthrough step it completes) is done once the verdict shows.
    void shown.then((picked) => {
      if (picked) void act(s, v.action);
    });
  };
}

async function act(s: Services, action: NextAction): Promise<void> {
  if (action.kind === 'command') {
    await vscode.commands.executeCommand(action.command, ...(action.args ?? []));
    return;
  }
  if (action.kind === 'open') {
    await vscode.env.openExternal(vscode.Uri.parse(action.url));
    return;
  }
  // The interpreter itself is the terminal's process: no shell, so no quoting of a path with spaces.
  const line = [action.program, ...action.args].join(' ');
  s.ctx.log.appendLine(`[extension] ${action.title}: ${line}`);
  vscode.window.createTerminal({ name: `QLoRA Studio: ${action.title}`, shellPath: action.program, shellArgs: action.args }).show();
  const picked = await vscode.window.showInformationMessage(
    `Running ${line} in the terminal. When it has finished, restart the engine so that it loads the new packages.`,
    'Restart Engine and Check Again',
  );
  if (!picked) return;
  // The engine keeps the old torch loaded: a new language server starts a new engine.
  await s.ctx.restartClient();
  await vscode.commands.executeCommand('qloraStudio.checkEnvironment');
}
