/**
 * Drives the real language server (server/src/server.ts's startServer) over in-memory streams with a real LSP
 * client connection: initialize, open/change documents, and wait for published diagnostics.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import {
  CodeActionRequest,
  CodeLensRequest,
  CompletionRequest,
  createConnection,
  createProtocolConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  HoverRequest,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  type CodeAction,
  type CodeLens,
  type CompletionItem,
  type Diagnostic,
  type Hover,
  type ProtocolConnection,
  type PublishDiagnosticsParams,
  type Range,
  type TextDocumentContentChangeEvent,
} from 'vscode-languageserver/node';
import { startServer, type ServerOptions } from '../../server/src/server';
import type { LintService } from '../../server/src/lint/service';

export const repo = path.resolve(__dirname, '..', '..');
export const fixtures = path.join(repo, 'test', 'fixtures', 'lint');

/** An environment without a GPU and with an empty Hugging Face cache, so results do not depend on the machine. */
export function testEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-lint-home-'));
  return { ...process.env, HOME: home, HF_HOME: path.join(home, 'hf'), HF_HUB_CACHE: '', QLORA_STUDIO_CUDA: '0', ...extra };
}

export class LspClient {
  readonly published: PublishDiagnosticsParams[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly versions = new Map<string, number>();
  lensRefreshes = 0;

  constructor(
    readonly connection: ProtocolConnection,
    /** The server's lint service when it runs in this thread; null for a server elsewhere (a worker, a process). */
    readonly service: LintService | null,
  ) {
    connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
      this.published.push(p);
      for (const w of this.waiters.splice(0)) w();
    });
    connection.onRequest('workspace/codeLens/refresh', () => {
      this.lensRefreshes++;
      for (const w of this.waiters.splice(0)) w();
      return null;
    });
    connection.onRequest('workspace/configuration', (p: { items: unknown[] }) => p.items.map(() => null));
    connection.onNotification('window/logMessage', () => {});
  }

  /** `trusted`: what the extension sends as initializationOptions (absent: a client with no notion of trust). */
  static async start(root: string, options: ServerOptions & { trusted?: boolean } = {}): Promise<LspClient> {
    const toServer = new PassThrough();
    const toClient = new PassThrough();
    const service = startServer(createConnection(toServer, toClient), { env: options.env ?? testEnv(), plan: options.plan, launch: options.launch });
    const init = options.trusted === undefined ? undefined : { trusted: options.trusted };
    return LspClient.attach(createProtocolConnection(toClient, toServer), service, root, init);
  }

  /** Initializes a server reachable through `connection`, with `root` as the workspace folder. */
  static async attach(connection: ProtocolConnection, service: LintService | null, root: string, initializationOptions?: unknown): Promise<LspClient> {
    const client = new LspClient(connection, service);
    connection.listen();
    const rootUri = pathToFileURL(root).href;
    await connection.sendRequest(InitializeRequest.type, {
      processId: null,
      rootUri,
      workspaceFolders: [{ uri: rootUri, name: path.basename(root) }],
      capabilities: { workspace: { codeLens: { refreshSupport: true }, configuration: true } },
      initializationOptions,
    });
    await connection.sendNotification(InitializedNotification.type, {});
    return client;
  }

  uri(file: string): string {
    return pathToFileURL(file).href;
  }

  async open(file: string, text?: string): Promise<string> {
    const uri = this.uri(file);
    const content = text ?? new TextDecoder().decode(fs.readFileSync(file));
    const languageId = file.endsWith('.jsonl') ? 'jsonl' : 'yaml';
    this.versions.set(uri, 1);
    await this.connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId, version: 1, text: content } });
    return uri;
  }

  async change(uri: string, changes: TextDocumentContentChangeEvent[]): Promise<number> {
    const version = (this.versions.get(uri) ?? 1) + 1;
    this.versions.set(uri, version);
    await this.connection.sendNotification(DidChangeTextDocumentNotification.type, { textDocument: { uri, version }, contentChanges: changes });
    return version;
  }

  /** The first publish for `uri` (at `version`, when given) at or after index `from` of `published`. */
  async diagnostics(uri: string, options: { version?: number; from?: number; timeoutMs?: number } = {}): Promise<Diagnostic[]> {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000);
    for (;;) {
      const hit = this.published.slice(options.from ?? 0).find((p) => p.uri === uri && (options.version === undefined || p.version === options.version));
      if (hit) return hit.diagnostics;
      if (Date.now() > deadline) throw new Error(`no diagnostics published for ${uri}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  publishesFor(uri: string): PublishDiagnosticsParams[] {
    return this.published.filter((p) => p.uri === uri);
  }

  hover(uri: string, line: number, character: number): Promise<Hover | null> {
    return this.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: { line, character } });
  }

  codeLens(uri: string): Promise<CodeLens[] | null> {
    return this.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri } });
  }

  async codeActions(uri: string, range: Range, diagnostics: Diagnostic[]): Promise<CodeAction[]> {
    const result = await this.connection.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range, context: { diagnostics } });
    return (result ?? []) as CodeAction[];
  }

  async completion(uri: string, line: number, character: number): Promise<CompletionItem[]> {
    const result = await this.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position: { line, character } });
    return Array.isArray(result) ? result : (result?.items ?? []);
  }

  async waitFor(predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  dispose(): void {
    this.connection.dispose();
  }
}

/** A diagnostic's message as text (LSP 3.18 allows markup). */
export function text(d: Diagnostic): string {
  return typeof d.message === 'string' ? d.message : d.message.value;
}

/** [code, startLine, startChar, endLine, endChar] of each diagnostic, sorted, for table comparisons. */
export function summary(diagnostics: Diagnostic[]): [string, number, number, number, number][] {
  return diagnostics
    .map((d) => [String(d.code), d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character] as [string, number, number, number, number])
    .sort((a, b) => a[1] - b[1] || a[2] - b[2] || a[0].localeCompare(b[0]));
}
