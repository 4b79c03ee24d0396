/** New Fine-tune Project from Sample, and Set Up Engine Environment (the Python environment, with progress). */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Services } from './services';
import { UserError } from '../context';
import { requireTrusted } from '../guards';
import { settings, workspaceRoot } from '../settings';

const SampleFiles = ['train.jsonl', 'validation.jsonl', 'test.jsonl', 'summarize.prompt.yaml', 'smollm2.prompt.yaml', 'README.md'];

/** Copies the DialogSum sample into the workspace; returns the new config's path. */
export function newProject(s: Services) {
  return async (): Promise<string | undefined> => {
    const root = workspaceRoot();
    if (!root) {
      throw new UserError('Open (or create) a folder first; the sample project is copied into it.', [{ title: 'Open Folder', command: 'workbench.action.files.openFolder' }]);
    }
    const name = await vscode.window.showInputBox({
      title: 'New Fine-tune Project from Sample',
      prompt: 'Folder (inside the workspace) for the DialogSum sample: data, prompt template and config',
      value: 'dialogsum-finetune',
      validateInput: (v) => (!v.trim() ? 'A folder name' : /[<>:"|?*]/.test(v) ? 'Not a valid folder name' : fs.existsSync(path.join(root, v.trim(), 'finetune.yaml')) ? 'That folder already has a finetune.yaml' : null),
    });
    if (!name) return undefined;
    const target = path.join(root, name.trim());
    const sample = s.ctx.extension.asAbsolutePath(path.join('samples', 'dialogsum'));
    fs.mkdirSync(target, { recursive: true });
    for (const file of SampleFiles) {
      const from = path.join(sample, file);
      if (fs.existsSync(from)) fs.copyFileSync(from, path.join(target, file));
    }
    const phi2 = fs.readFileSync(path.join(sample, 'phi-2.yaml'), 'utf8').replace(/^model:.*$/m, `model: ${settings.defaultModel()}`);
    const config = path.join(target, 'finetune.yaml');
    fs.writeFileSync(config, phi2);
    // The CPU demo needs a model `npm install` put in the extension's folder: the real SmolLM2 when it was imported,
    // else the tiny random Phi.
    const demoModels = [
      { folder: 'smollm2-135m-instruct', config: 'smollm2.yaml', file: 'model.safetensors' },
      { folder: 'tiny-phi', config: 'tiny.yaml', file: 'config.json' },
    ];
    for (const m of demoModels) {
      const model = s.ctx.extension.asAbsolutePath(path.join('samples', 'models', m.folder));
      if (!fs.existsSync(path.join(model, m.file))) continue;
      const demo = fs.readFileSync(path.join(sample, m.config), 'utf8').replace(/^model:.*$/m, `model: ${model}`);
      fs.writeFileSync(path.join(target, 'cpu-demo.yaml'), demo);
      break;
    }
    await vscode.window.showTextDocument(vscode.Uri.file(config));
    void vscode.window.showInformationMessage(`Created ${path.relative(root, config)} with the DialogSum sample. Edit it, then run Fine-tune Phi-2.`, 'Fine-tune Phi-2').then((pick) => {
      if (pick) void vscode.commands.executeCommand('qloraStudio.fineTune', config);
    });
    return config;
  };
}

/** Runs scripts/setup-engine.mjs (the same as `npm run setup:engine`) with its output in the QLoRA Studio log. */
export function setupEngine(s: Services) {
  return async (): Promise<void> => {
    requireTrusted('Setting up the engine environment');
    const script = s.ctx.extension.asAbsolutePath(path.join('scripts', 'setup-engine.mjs'));
    if (!fs.existsSync(script)) throw new UserError(`The setup script is missing from the extension (${script}). Reinstall the extension.`);
    const explicit = settings.pythonPath();
    const choice = await vscode.window.showWarningMessage(
      explicit
        ? `Check that ${explicit} (qloraStudio.pythonPath) has the engine's packages, and build the tiny demo model?`
        : `Create the engine's Python environment (.venv in the extension folder) with torch, transformers, peft and bitsandbytes? About 3 GB on Linux; a few minutes.`,
      { modal: true },
      explicit ? 'Check' : 'Create',
    );
    if (!choice) return;
    const env: NodeJS.ProcessEnv = { ...process.env, ELECTRON_RUN_AS_NODE: '1' };
    if (explicit) env.QLORA_STUDIO_PYTHON = explicit;
    s.ctx.log.show(true);
    s.ctx.log.appendLine(`[extension] ${script}${explicit ? '' : ' --force'}`);
    const code = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'QLoRA Studio: setting up the engine', cancellable: true },
      (progress, token) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, [script, ...(explicit ? [] : ['--force'])], { env, cwd: path.dirname(path.dirname(script)) });
          const onData = (chunk: Buffer): void => {
            const text = chunk.toString('utf8');
            s.ctx.log.append(text);
            const last = text.replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n').pop();
            if (last) progress.report({ message: last.slice(0, 120) });
          };
          child.stdout.on('data', onData);
          child.stderr.on('data', onData);
          child.on('error', (e) => {
            s.ctx.log.appendLine(`[extension] ${e.message}`);
            resolve(null);
          });
          child.on('close', (c) => resolve(c));
          token.onCancellationRequested(() => child.kill());
        }),
    );
    if (code !== 0) {
      throw new UserError(`Setting up the engine failed${code === null ? '' : ` (exit code ${code})`}. The QLoRA Studio output shows why.`, [{ title: 'Show Output', command: 'qloraStudio.showLog' }]);
    }
    await s.ctx.restartClient();
    void vscode.window.showInformationMessage('The engine environment is ready. Run Fine-tune Phi-2 next.', 'Fine-tune Phi-2').then((p) => {
      if (p) void vscode.commands.executeCommand('qloraStudio.fineTune');
    });
  };
}
