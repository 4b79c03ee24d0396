/**
 * The language client: starts dist/server.js over IPC (lint diagnostics + the job manager) and offers typed
 * `request`/`onNotification` over protocol/lsp.ts.
 */
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import type { LspNotificationMethod, LspNotifications, LspRequestMethod, LspRequests } from '../../protocol/lsp';
import { engineVenv } from './engine-env';

/** What the lint server reads: datasets, prompt templates and fine-tune configs. */
export const DocumentSelector = [
  { scheme: 'file', pattern: '**/*.jsonl' },
  { scheme: 'file', language: 'jsonl' },
  { scheme: 'file', language: 'yaml' },
  { scheme: 'untitled', language: 'jsonl' },
];

export class Client implements vscode.Disposable {
  private constructor(private readonly lc: LanguageClient) {}

  /** Starts the server; null (and a message in the log) when the bundle has no server. */
  static async start(context: vscode.ExtensionContext, output: vscode.OutputChannel): Promise<Client | null> {
    const module = context.asAbsolutePath('dist/server.js');
    if (!fs.existsSync(module)) {
      output.appendLine(`[extension] no language server at ${module}: linting, training and generation are unavailable.`);
      return null;
    }
    // The engine's environment in global storage (Set Up Engine Environment), found by the server's interpreter
    // discovery after qloraStudio.pythonPath and $QLORA_STUDIO_PYTHON, before the extension folder's .venv.
    const env = { ...process.env, QLORA_STUDIO_VENV: process.env.QLORA_STUDIO_VENV || engineVenv(context) };
    const serverOptions: ServerOptions = {
      run: { module, transport: TransportKind.ipc, options: { env } },
      debug: { module, transport: TransportKind.ipc, options: { env, execArgv: ['--nolazy', '--inspect=6009'] } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: DocumentSelector,
      synchronize: { configurationSection: 'qloraStudio' },
      initializationOptions: { trusted: vscode.workspace.isTrusted },
    };
    const lc = new LanguageClient('qloraStudio', 'QLoRA Studio', serverOptions, clientOptions);
    await lc.start();
    return new Client(lc);
  }

  request<M extends LspRequestMethod>(method: M, params: LspRequests[M]['params'], token?: vscode.CancellationToken): Promise<LspRequests[M]['result']> {
    return this.lc.sendRequest<LspRequests[M]['result']>(method, params, token);
  }

  onNotification<M extends LspNotificationMethod>(method: M, handler: (params: LspNotifications[M]) => void): vscode.Disposable {
    return this.lc.onNotification(method, handler);
  }

  async dispose(): Promise<void> {
    await this.lc.stop().catch(() => undefined);
  }
}
