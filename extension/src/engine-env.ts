/**
 * The engine's Python environment as the extension manages it: a folder in the extension's global storage (shared
 * by every version and workspace, so an update keeps it), and scripts/setup-engine.mjs run into it with its progress
 * (step, percent, download sizes) shown in a cancellable notification.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

/** Where Set Up Engine Environment puts the environment; the language server gets it as $QLORA_STUDIO_VENV. */
export function engineVenv(context: vscode.ExtensionContext): string {
  return path.join(context.globalStorageUri.fsPath, 'engine-env');
}

/** One `::qlora-setup::` line of scripts/setup-engine.mjs (scripts/pip-progress.mjs writes it). */
interface SetupProgress {
  step: number;
  steps: number;
  title: string;
  percent: number;
  message: string;
  downloaded?: number;
  total?: number;
}

const ProgressPrefix = '::qlora-setup::';

export type SetupOutcome = { code: number | null; cancelled: boolean };

/**
 * Runs the set-up script (node in the extension host's own runtime) with the notification's progress; the log gets
 * everything else it prints. Cancelling kills the script and its pip with it; the next run resumes (a repair).
 */
export function runSetup(script: string, args: string[], env: NodeJS.ProcessEnv, log: vscode.OutputChannel): Thenable<SetupOutcome> {
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'QLoRA Studio: setting up the engine', cancellable: true },
    (progress, token) =>
      new Promise<SetupOutcome>((resolve) => {
        // Its own process group, so a cancel reaches pip too.
        const child = spawn(process.execPath, [script, ...args], { env: { ...env, ELECTRON_RUN_AS_NODE: '1' }, cwd: path.dirname(path.dirname(script)), detached: process.platform !== 'win32' });
        let shown = 0;
        let cancelled = false;
        const onLine = (line: string): void => {
          if (!line.startsWith(ProgressPrefix)) {
            log.appendLine(line);
            return;
          }
          try {
            const p = JSON.parse(line.slice(ProgressPrefix.length)) as SetupProgress;
            const increment = Math.max(0, p.percent - shown);
            shown = Math.max(shown, p.percent);
            progress.report({ increment, message: `${Math.floor(p.percent)}% · step ${p.step} of ${p.steps}: ${p.title} — ${p.message}` });
          } catch {
            log.appendLine(line);
          }
        };
        for (const stream of [child.stdout, child.stderr]) {
          let partial = '';
          stream.setEncoding('utf8');
          stream.on('data', (chunk: string) => {
            const lines = (partial + chunk).split(/\r?\n/);
            partial = lines.pop() ?? '';
            for (const line of lines) onLine(line.replace(/\x1b\[[0-9;]*m/g, ''));
          });
        }
        child.on('error', (e) => {
          log.appendLine(`[extension] ${e.message}`);
          resolve({ code: null, cancelled });
        });
        child.on('close', (code) => resolve({ code, cancelled }));
        token.onCancellationRequested(() => {
          cancelled = true;
          log.appendLine('[extension] set-up cancelled: stopping it (the next Set Up Engine Environment resumes)');
          killTree(child.pid);
        });
      }),
  );
}

function killTree(pid: number | undefined): void {
  if (pid === undefined) return;
  if (process.platform === 'win32') {
    spawnSync('taskkill', ['/pid', String(pid), '/T', '/F']);
    return;
  }
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

/** True when the managed environment has an interpreter (it may still need a repair; the script decides). */
export function hasEngineVenv(context: vscode.ExtensionContext): boolean {
  const venv = engineVenv(context);
  return fs.existsSync(path.join(venv, process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python'));
}
