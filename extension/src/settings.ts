/** Typed getters over one `get<T>`; read at use, never cached (a changed setting applies to the next action). */
import * as path from 'node:path';
import * as vscode from 'vscode';

export const Section = 'qloraStudio';

function get<T>(key: string, fallback: T, scope?: vscode.ConfigurationScope): T {
  return vscode.workspace.getConfiguration(Section, scope).get<T>(key, fallback);
}

export const settings = {
  /** Explicit engine interpreter; '' = $QLORA_STUDIO_PYTHON or the project's .venv. Ignored in untrusted workspaces. */
  pythonPath: (): string => (vscode.workspace.isTrusted ? get('pythonPath', '') : ''),
  /** Runs folder, relative to the first workspace folder. */
  runsDir: (): string => get('runsDir', 'runs'),
  /** Model written into a config created from the sample (`microsoft/phi-2` or a local folder). */
  defaultModel: (): string => get('defaultModel', 'microsoft/phi-2'),
  /** Share of GPU memory a plan may use before the guided flow warns (0.5–1). */
  gpuMemoryFraction: (): number => clamp(get('gpuMemoryFraction', 0.9), 0.1, 1),
  maxNewTokens: (): number => Math.max(1, Math.round(get('summarize.maxNewTokens', 96))),
  compareWithBase: (): boolean => get('summarize.compareWithBase', false),
  evalLimit: (): number => Math.max(0, Math.round(get('evaluate.limit', 0))),
  openDashboardOnStart: (): boolean => get('dashboard.openOnTrainingStart', true),
};

export async function setCompareWithBase(value: boolean): Promise<void> {
  await vscode.workspace.getConfiguration(Section).update('summarize.compareWithBase', value, vscode.ConfigurationTarget.Global);
}

/** The first workspace folder, or null when only loose files are open. */
export function workspaceRoot(): string | null {
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder && folder.uri.scheme === 'file' ? folder.uri.fsPath : null;
}

/** Absolute runs folder, or null without a workspace folder. */
export function runsFolder(): string | null {
  const root = workspaceRoot();
  return root ? path.resolve(root, settings.runsDir()) : null;
}

function clamp(value: number, min: number, max: number): number {
  return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : max;
}
