/** New Fine-tune Project from Sample, and Set Up Engine Environment (the Python environment, with progress). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Services } from './services';
import { UserError } from '../context';
import { engineVenv, hasEngineVenv, runSetup } from '../engine-env';
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

/**
 * Runs scripts/setup-engine.mjs into the environment in global storage (created, or repaired: only what is missing is
 * installed), with its progress; with qloraStudio.pythonPath set it only checks that interpreter.
 */
export function setupEngine(s: Services) {
  return async (): Promise<void> => {
    requireTrusted('Setting up the engine environment');
    const script = s.ctx.extension.asAbsolutePath(path.join('scripts', 'setup-engine.mjs'));
    if (!fs.existsSync(script)) throw new UserError(`The setup script is missing from the extension (${script}). Reinstall the extension.`);
    const explicit = settings.pythonPath();
    const venv = engineVenv(s.ctx.extension);
    const exists = hasEngineVenv(s.ctx.extension);
    const choice = await vscode.window.showWarningMessage(
      explicit
        ? `Check that ${explicit} (qloraStudio.pythonPath) has the engine's packages, and build the tiny demo model?`
        : exists
          ? `Check the engine's Python environment (${venv}) and install whatever is missing?`
          : `Create the engine's Python environment with torch, transformers, peft and bitsandbytes in VS Code's storage for this extension (${venv}), kept across updates? About 3 GB on Linux; a few minutes.`,
      { modal: true },
      explicit ? 'Check' : exists ? 'Check and Repair' : 'Create',
    );
    if (!choice) return;
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (explicit) env.QLORA_STUDIO_PYTHON = explicit;
    const args = ['--progress', 'json', ...(explicit ? [] : ['--venv', venv])];
    s.ctx.log.show(true);
    s.ctx.log.appendLine(`[extension] ${script} ${args.join(' ')}`);
    const started = Date.now();
    const { code, cancelled } = await runSetup(script, args, env, s.ctx.log);
    s.ctx.log.appendLine(`[extension] set-up ${cancelled ? 'cancelled' : code === 0 ? 'done' : `failed (exit ${code})`} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (cancelled) {
      void vscode.window.showInformationMessage('Engine set-up cancelled. What was installed is kept: Set Up Engine Environment resumes from there.', 'Resume').then((p) => {
        if (p) void vscode.commands.executeCommand('qloraStudio.setupEngine');
      });
      return;
    }
    if (code !== 0) {
      throw new UserError(`Setting up the engine failed${code === null ? '' : ` (exit code ${code})`}. The QLoRA Studio output shows why; running Set Up Engine Environment again repairs what is missing.`, [
        { title: 'Show Output', command: 'qloraStudio.showLog' },
        { title: 'Retry', command: 'qloraStudio.setupEngine' },
      ]);
    }
    await s.ctx.restartClient();
    void vscode.window.showInformationMessage('The engine environment is ready. Run Fine-tune Phi-2 next.', 'Fine-tune Phi-2').then((p) => {
      if (p) void vscode.commands.executeCommand('qloraStudio.fineTune');
    });
  };
}
