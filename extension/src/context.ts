/**
 * One object owns every disposable, split by lifetime: the extension's (context.subscriptions), the language
 * client's (re-created on restart), and each run's (released when the run ends).
 */
import * as vscode from 'vscode';
import { Client } from './client';
import { Live } from './live';

/** A failure with a message the user can act on; commands show it instead of a stack trace. */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    /** Buttons: label -> command id (with arguments). */
    readonly actions: { title: string; command: string; args?: unknown[] }[] = [],
  ) {
    super(message);
  }
}

export class Ctx implements vscode.Disposable {
  readonly log: vscode.OutputChannel;
  readonly live = new Live();
  private clientValue: Client | null = null;
  private clientStarting: Promise<Client | null> | null = null;
  private clientSubs: vscode.Disposable[] = [];
  private readonly runSubs = new Map<string, vscode.Disposable[]>();
  private readonly clientListeners = new Set<(client: Client) => vscode.Disposable[]>();

  constructor(readonly extension: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel('QLoRA Studio');
    extension.subscriptions.push(this.log, this.live, this);
  }

  /** Extension lifetime. */
  push(...disposables: vscode.Disposable[]): void {
    this.extension.subscriptions.push(...disposables);
  }

  get client(): Client | null {
    return this.clientValue;
  }

  /** Runs `listener` for the current client and every later one; what it returns lives as long as that client. */
  onClient(listener: (client: Client) => vscode.Disposable[]): void {
    this.clientListeners.add(listener);
    if (this.clientValue) this.clientSubs.push(...listener(this.clientValue));
  }

  async startClient(): Promise<Client | null> {
    this.clientStarting ??= (async () => {
      try {
        const client = await Client.start(this.extension, this.log);
        if (!client) return null;
        this.clientValue = client;
        this.clientSubs.push(...this.live.attach(client, this.log));
        for (const listener of this.clientListeners) this.clientSubs.push(...listener(client));
        return client;
      } catch (error) {
        this.log.appendLine(`[extension] the language server did not start: ${(error as Error).message}`);
        return null;
      } finally {
        this.clientStarting = null;
      }
    })();
    return this.clientStarting;
  }

  async restartClient(): Promise<void> {
    await this.stopClient();
    await this.startClient();
  }

  /** The client, started if needed; a UserError when the server cannot run. */
  async requireClient(): Promise<Client> {
    const client = this.clientValue ?? (await this.startClient());
    if (!client) {
      throw new UserError('The QLoRA Studio language server is not running. See the "QLoRA Studio" output for why.', [
        { title: 'Show Output', command: 'qloraStudio.showLog' },
      ]);
    }
    return client;
  }

  /** Run lifetime: released by `endRun` (or with the extension). */
  pushRun(runDir: string, ...disposables: vscode.Disposable[]): void {
    const list = this.runSubs.get(runDir) ?? [];
    list.push(...disposables);
    this.runSubs.set(runDir, list);
  }

  endRun(runDir: string): void {
    for (const d of this.runSubs.get(runDir) ?? []) d.dispose();
    this.runSubs.delete(runDir);
  }

  private async stopClient(): Promise<void> {
    for (const d of this.clientSubs.splice(0)) d.dispose();
    const client = this.clientValue;
    this.clientValue = null;
    this.live.reset();
    await client?.dispose();
  }

  async dispose(): Promise<void> {
    for (const runDir of [...this.runSubs.keys()]) this.endRun(runDir);
    await this.stopClient();
  }
}
