/**
 * Fine-tune Phi-2 (the guided flow), Resume Run and Cancel Run. The flow: pick a config (or create one from the
 * sample) → environment check → memory estimate against the detected GPU → start; then a cancellable progress
 * notification follows the run until it ends.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import * as L from '../../../protocol/lsp';
import { RunFolder } from '../../../protocol/run-folder';
import type { Services } from './services';
import { UserError } from '../context';
import { formatBytes, formatCount, formatDuration } from '../../../protocol/format';
import { pickRun, problemError, requireFolder, requireTrusted } from '../guards';
import { runDirOf } from '../runs-tree';
import { settings } from '../settings';

const CreateFromSample = '$(add) Create a config from the sample…';

/** Config files in the workspace: YAML with top-level `model:` and `data:` (run folders excluded). */
async function findConfigs(runsDir: string): Promise<vscode.Uri[]> {
  const files = await vscode.workspace.findFiles('**/*.{yaml,yml}', '{**/node_modules/**,**/.venv/**,**/.git/**}', 200);
  const out: vscode.Uri[] = [];
  for (const uri of files) {
    if (uri.fsPath.startsWith(runsDir + path.sep)) continue;
    try {
      const text = fs.readFileSync(uri.fsPath, 'utf8');
      if (/^model\s*:/m.test(text) && /^data\s*:/m.test(text)) out.push(uri);
    } catch {
      // unreadable: not a candidate
    }
  }
  return out.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
}

async function pickConfig(root: string, runsDir: string): Promise<string | null> {
  const configs = await findConfigs(runsDir);
  const active = vscode.window.activeTextEditor?.document.uri.fsPath;
  configs.sort((a, b) => Number(b.fsPath === active) - Number(a.fsPath === active));
  type Item = vscode.QuickPickItem & { file?: string };
  const items: Item[] = configs.map((uri) => {
    const text = fs.readFileSync(uri.fsPath, 'utf8');
    const model = /^model\s*:\s*(\S+)/m.exec(text)?.[1] ?? '?';
    const quant = /^quantization\s*:\s*(\S+)/m.exec(text)?.[1] ?? 'nf4';
    const steps = /^\s+max_steps\s*:\s*(\d+)/m.exec(text)?.[1];
    return { label: path.basename(uri.fsPath), description: path.relative(root, path.dirname(uri.fsPath)) || '.', detail: `model ${model} · ${quant}${steps ? ` · ${steps} steps` : ''}`, file: uri.fsPath };
  });
  items.push({ label: CreateFromSample, detail: 'Copies the DialogSum sample (data, template, config) into this folder' });
  const picked = await vscode.window.showQuickPick(items, { title: 'Fine-tune Phi-2 (1/2): pick a config', placeHolder: 'Fine-tune configs in this folder', matchOnDetail: true });
  if (!picked) return null;
  if (picked.file) return picked.file;
  const created = (await vscode.commands.executeCommand<string | undefined>('qloraStudio.newProject')) ?? null;
  return created;
}

/** Environment check: which Python, torch, CUDA; a UserError that says exactly what to do when it cannot train. */
async function checkEnvironment(s: Services): Promise<L.EnvCheckResult> {
  const client = await s.ctx.requireClient();
  const env = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'QLoRA Studio: checking the engine environment…' }, () =>
    client.request(L.EnvCheck, { probe: true }),
  );
  if (env.problem) throw problemError(env.problem);
  const r = env.report!;
  const missing = (['torch', 'transformers', 'peft'] as const).filter((p) => !r[p].available);
  if (missing.length) {
    throw new UserError(`The engine's Python (${env.python}) lacks ${missing.join(', ')}. Set up the engine environment, or point qloraStudio.pythonPath at a Python that has them.`, [
      { title: 'Set Up Engine Environment', command: 'qloraStudio.setupEngine' },
      { title: 'Choose Python', command: 'workbench.action.openSettings', args: ['qloraStudio.pythonPath'] },
    ]);
  }
  s.ctx.log.appendLine(
    `[extension] engine: Python ${r.python.version} (${env.python}), torch ${r.torch.version ?? '?'}${r.torch.cuda ? ` CUDA ${r.torch.cuda}` : ''}, ` +
      `${r.cuda.available ? r.cuda.devices.map((d) => `${d.name} ${formatBytes(d.freeMemory)} free`).join(', ') : 'no CUDA GPU'}`,
  );
  return env;
}

/** Memory estimate and the start confirmation. Returns false when the user backs out. */
async function confirmPlan(s: Services, configPath: string, env: L.EnvCheckResult): Promise<boolean> {
  const client = await s.ctx.requireClient();
  const planned = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'QLoRA Studio: estimating memory…' }, () =>
    client.request(L.TrainPlan, { configPath }),
  );
  if (planned.problem) throw problemError(planned.problem);
  const config = planned.config!;
  const plan = planned.plan!;
  const gpu = plan.device ?? env.report?.cuda.devices[0] ?? null;
  if (!gpu && config.quantization !== 'none') {
    throw new UserError(
      `No CUDA GPU is visible to the engine, and ${path.basename(configPath)} uses ${config.quantization} quantization, which needs one (bitsandbytes). ` +
        'On this machine: fine-tune the tiny demo on the CPU (samples/dialogsum/tiny.yaml, quantization: none), or install a CUDA build of torch in the engine environment.',
      [
        { title: 'Open Config', command: 'vscode.open', args: [vscode.Uri.file(configPath)] },
        { title: 'Set Up Engine Environment', command: 'qloraStudio.setupEngine' },
      ],
    );
  }
  const fraction = settings.gpuMemoryFraction();
  const budget = gpu ? gpu.freeMemory * fraction : null;
  const fits = budget === null ? null : plan.peakBytes <= budget;
  const where = gpu ? `${gpu.name}: ${formatBytes(gpu.freeMemory)} free, ${Math.round(fraction * 100)}% usable` : 'CPU (no CUDA GPU)';
  const estimate = `peak ≈ ${formatBytes(plan.peakBytes)} on ${where}`;
  const params = `${formatCount(plan.baseParameters)} base parameters, ${formatCount(plan.loraParameters)} trained (LoRA)`;
  type Item = vscode.QuickPickItem & { action: 'start' | 'open' | 'checkpointing' };
  const items: Item[] = [
    {
      action: 'start',
      label: fits === false ? '$(warning) Start anyway' : '$(play) Start training',
      description: `${config.train.max_steps} steps`,
      detail: `${estimate}${fits === false ? ' — exceeds the budget, likely out of memory' : ''}`,
    },
    { action: 'open', label: '$(go-to-file) Open the config first', detail: params },
  ];
  if (fits === false && !config.train.gradient_checkpointing && plan.peakBytesWithCheckpointing < plan.peakBytes) {
    items.splice(1, 0, {
      action: 'checkpointing',
      label: '$(lightbulb) Turn on gradient checkpointing',
      detail: `peak ≈ ${formatBytes(plan.peakBytesWithCheckpointing)} with train.gradient_checkpointing: true`,
    });
  }
  const top = plan.terms.slice(0, 3).map((t) => `${t.name} ${formatBytes(t.bytes)}`).join(', ');
  const picked = await vscode.window.showQuickPick(items, {
    title: `Fine-tune Phi-2 (2/2): ${path.basename(configPath)} — ${estimate}`,
    placeHolder: `${top}${fits === true ? ' — fits' : fits === false ? ' — does not fit' : ''}`,
  });
  if (!picked) return false;
  if (picked.action === 'start') return true;
  const doc = await vscode.window.showTextDocument(vscode.Uri.file(configPath));
  if (picked.action === 'checkpointing') {
    const line = doc.document.getText().split('\n').findIndex((l) => /^\s+gradient_checkpointing\s*:/.test(l));
    if (line >= 0) doc.selection = new vscode.Selection(line, 0, line, doc.document.lineAt(line).text.length);
    void vscode.window.showInformationMessage('Set train.gradient_checkpointing: true, save, and run Fine-tune Phi-2 again.');
  }
  return false;
}

export async function startRun(s: Services, params: L.TrainStartParams): Promise<void> {
  const client = await s.ctx.requireClient();
  const result = await client.request(L.TrainStart, params);
  if (result.problem) throw problemError(result.problem);
  const started = result.started!;
  s.ctx.live.started(started.runId, started.runDir, started.configPath, started.totalSteps);
  s.runs.refresh();
  if (settings.openDashboardOnStart()) s.dashboard.show([started.runDir], 'charts');
  followRun(s, started);
}

/** A cancellable progress notification for the run; its end says what happened and offers the next step. */
function followRun(s: Services, started: NonNullable<L.TrainStartResult['started']>): void {
  const { runId, runDir } = started;
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Fine-tuning ${runId}`, cancellable: true },
    (progress, token) =>
      new Promise<void>((resolve) => {
        let last = started.startStep;
        const total = started.totalSteps || 1;
        const dropped = started.data.droppedTooLong ? ` (${started.data.droppedTooLong} records over max_length dropped)` : '';
        progress.report({ message: `${started.data.trainRecords} training records${dropped}; loading…` });
        const sub = s.ctx.live.onDidChange((e) => {
          if (e.kind === 'engine' || e.run.runDir !== runDir) return;
          if (e.kind === 'stage') progress.report({ message: e.params.message || e.params.stage });
          if (e.kind === 'progress') {
            const p = e.params;
            progress.report({ increment: ((p.step - last) / total) * 100, message: `step ${p.step}/${p.totalSteps} · loss ${p.loss.toFixed(4)} · ETA ${formatDuration(p.etaSeconds)}` });
            last = p.step;
          }
          if (e.kind === 'end') {
            s.ctx.endRun(runDir);
            resolve();
            void announceEnd(s, e.params);
          }
        });
        s.ctx.pushRun(runDir, sub, { dispose: resolve });
        token.onCancellationRequested(() => {
          progress.report({ message: 'cancelling: saving a checkpoint…' });
          void s.ctx.client?.request(L.TrainCancel, { runId });
        });
      }),
  );
}

async function announceEnd(s: Services, end: L.TrainDidEndParams): Promise<void> {
  s.runs.refresh();
  if (end.status === 'completed') {
    const pick = await vscode.window.showInformationMessage(`Run ${end.runId} completed at step ${end.step}. Its adapter is in ${end.adapterPath ?? path.join(end.runDir, 'adapter')}.`, 'Summarize Selection', 'Evaluate Adapter', 'Open Dashboard');
    if (pick === 'Summarize Selection') await vscode.commands.executeCommand('qloraStudio.summarizeSelection', end.runDir);
    if (pick === 'Evaluate Adapter') await vscode.commands.executeCommand('qloraStudio.evaluateAdapter', end.runDir);
    if (pick === 'Open Dashboard') s.dashboard.show([end.runDir]);
  } else if (end.status === 'cancelled') {
    const pick = await vscode.window.showInformationMessage(`Run ${end.runId} was cancelled at step ${end.step}.${end.checkpointPath ? ' It can resume from its checkpoint.' : ''}`, ...(end.checkpointPath ? ['Resume Run'] : []));
    if (pick === 'Resume Run') await vscode.commands.executeCommand('qloraStudio.resumeRun', end.runDir);
  } else {
    const message = end.error?.message ?? 'the engine stopped';
    const buttons = ['Show Engine Log', ...(end.checkpointPath ? ['Resume Run'] : [])];
    const pick = await vscode.window.showErrorMessage(`Run ${end.runId} failed at step ${end.step}: ${message}`, ...buttons);
    if (pick === 'Show Engine Log') s.ctx.log.show(true);
    if (pick === 'Resume Run') await vscode.commands.executeCommand('qloraStudio.resumeRun', end.runDir);
  }
}

export function fineTune(s: Services) {
  return async (arg?: unknown): Promise<void> => {
    requireTrusted('Fine-tuning');
    const { root, runsDir } = requireFolder();
    const configPath = arg instanceof vscode.Uri ? arg.fsPath : typeof arg === 'string' ? arg : await pickConfig(root, runsDir);
    if (!configPath) return;
    await vscode.workspace.textDocuments.find((d) => d.uri.fsPath === configPath && d.isDirty)?.save();
    const env = await checkEnvironment(s);
    if (!(await confirmPlan(s, configPath, env))) return;
    await startRun(s, { configPath, runsDir, resumeRunDir: null });
  };
}

export function resumeRun(s: Services) {
  return async (arg?: unknown): Promise<void> => {
    requireTrusted('Resuming a run');
    const { runsDir } = requireFolder();
    let runDir = runDirOf(arg);
    if (!runDir) {
      const run = await pickRun(s.runs, (r) => r.status !== 'completed' && r.status !== 'running' && fs.existsSync(path.join(r.runDir, 'checkpoints')), 'Resume which run?', 'No run to resume: only cancelled, failed or interrupted runs with a checkpoint can resume.');
      runDir = run?.runDir ?? null;
    }
    if (!runDir) return;
    await startRun(s, { configPath: path.join(runDir, RunFolder.config), runsDir, resumeRunDir: runDir });
  };
}

export function cancelRun(s: Services) {
  return async (arg?: unknown): Promise<void> => {
    const active = s.ctx.live.active;
    if (active.length === 0) throw new UserError('No run is training now.');
    const dir = runDirOf(arg);
    const run = (dir && active.find((r) => r.runDir === dir)) || (active.length === 1 ? active[0] : await pickActive(active));
    if (!run) return;
    const client = await s.ctx.requireClient();
    const r = await client.request(L.TrainCancel, { runId: run.runId });
    if (!r.cancelling) throw new UserError(`Run ${run.runId} is not training any more.`);
    void vscode.window.setStatusBarMessage(`QLoRA Studio: cancelling ${run.runId} (saving a checkpoint)…`, 5000);
  };
}

async function pickActive<T extends { runId: string }>(runs: T[]): Promise<T | undefined> {
  const picked = await vscode.window.showQuickPick(runs.map((r) => ({ label: r.runId, run: r })), { title: 'Cancel which run?' });
  return picked?.run;
}
