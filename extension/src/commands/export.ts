/** "Export Merged Model…": a run's adapter merged into its base model, written to a folder the user picks. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import * as L from '../../../protocol/lsp';
import { adapterRunDir, problemError, requireTrusted } from '../guards';
import type { Services } from './services';

const DTYPES: { label: string; description: string; dtype: L.ModelExportParams['dtype'] }[] = [
  { label: 'bf16', description: 'bfloat16: half the size of fp32, what most GPUs run', dtype: 'bfloat16' },
  { label: 'fp16', description: 'float16: for GPUs without bfloat16', dtype: 'float16' },
  { label: 'fp32', description: 'float32: exact, twice the size', dtype: 'float32' },
];

export const exportMerged = (s: Services) => async (arg?: unknown): Promise<void> => {
  requireTrusted('Exporting a merged model');
  const dir = await adapterRunDir(s.runs, arg, 'Export which run?', 'No completed run with an adapter to export yet.');
  if (!dir) return;
  const runId = path.basename(dir);
  const target = await vscode.window.showSaveDialog({
    title: `Export ${runId} merged into its base model: the folder to create`,
    saveLabel: 'Export Here',
    defaultUri: vscode.Uri.file(path.join(path.dirname(path.dirname(dir)), `${runId}-merged`)),
  });
  if (!target) return;
  const dtype = await vscode.window.showQuickPick(DTYPES, { title: 'Weights of the merged model' });
  if (!dtype) return;
  const client = await s.ctx.requireClient();
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Exporting ${runId} merged (${dtype.label})` },
    async (progress) => {
      const sub = client.onNotification(L.ModelDidProgress, (p) => {
        if (p.runDir === dir) progress.report({ message: p.stage });
      });
      try {
        return await client.request(L.ModelExport, { runDir: dir, out: target.fsPath, dtype: dtype.dtype });
      } finally {
        sub.dispose();
      }
    },
  );
  if (result.problem) throw problemError(result.problem);
  const reveal = 'Reveal in Explorer';
  const choice = await vscode.window.showInformationMessage(`Exported ${runId} merged into ${result.exported!.base}: ${target.fsPath}`, reveal);
  if (choice === reveal) await vscode.commands.executeCommand('revealFileInOS', target);
};
