/**
 * The language server: `node dist/server.js --stdio` (or --node-ipc from the extension). This file only wires
 * the connection to the features; lint lives in server/src/lint/ (LintService), the engine in server/src/engine-client/.
 * Custom requests (jobs, runs) are registered here too, next to the lint wiring, each delegating to its module.
 */
import { CodeActionKind, createConnection, ProposedFeatures, TextDocumentSyncKind, type Connection, type InitializeParams } from 'vscode-languageserver/node';
import { registerJobs, type JobsOptions } from './jobs';
import { LineDocuments } from './lint/documents';
import { codeActions, codeLenses, completion, hover, publishable } from './lint/lsp';
import { LintService, uriToPath, type LintHost } from './lint/service';

export interface ServerOptions {
  env?: NodeJS.ProcessEnv;
  /** Tests: start a fake engine for the jobs instead of Python. */
  launch?: JobsOptions['launch'];
  /** Replaces the engine's `train/plan` (tests); default: the job manager's engine, started lazily. */
  plan?: LintHost['plan'];
}

export function startServer(connection: Connection, options: ServerOptions = {}): LintService {
  const env = options.env ?? process.env;
  const documents = new LineDocuments();
  let roots: string[] = [];
  let canRefreshLenses = false;
  // Workspace trust, from the client (the extension sends initializationOptions.trusted and restarts the server
  // when trust is granted). A client with no notion of trust (no such option) is trusted. Untrusted: linting works,
  // but nothing starts the Python engine (the lens, plan, train, summarize, eval).
  let trusted = true;
  // One engine per server: the jobs' engine also answers the config lens's memory estimate.
  const jobs = registerJobs(connection, { env, launch: options.launch, trusted: () => trusted, onRunEnded: (configFile, end) => service.runEnded(configFile, end) });
  const plan: LintHost['plan'] = options.plan ?? ((config) => jobs.planResolved(config));

  const service = new LintService({
    publish: (uri, diagnostics, version) => void connection.sendDiagnostics({ uri, version, diagnostics: publishable(diagnostics) }),
    log: (message) => connection.console.log(message),
    refreshCodeLenses: () => {
      if (canRefreshLenses) void connection.sendRequest('workspace/codeLens/refresh').catch(() => undefined);
    },
    roots: () => roots,
    env,
    plan,
    trusted: () => trusted,
    cuda: () => {
      const report = jobs.engine.report;
      return report ? { available: report.cuda.available, how: 'engine environment report' } : null;
    },
  });

  connection.onInitialize((params: InitializeParams) => {
    roots = (params.workspaceFolders ?? []).map((f) => uriToPath(f.uri)).filter((p): p is string => p !== null);
    if (roots.length === 0 && params.rootUri) roots = [uriToPath(params.rootUri)].filter((p): p is string => p !== null);
    canRefreshLenses = !!params.capabilities.workspace?.codeLens?.refreshSupport;
    trusted = (params.initializationOptions as { trusted?: unknown } | undefined)?.trusted !== false;
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental, save: { includeText: false } },
        hoverProvider: true,
        codeLensProvider: { resolveProvider: false },
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
        completionProvider: { triggerCharacters: ['{', ' ', ':'] },
      },
      serverInfo: { name: 'qlora-studio' },
    };
  });

  documents.listen(connection, service);

  connection.onHover((p) => {
    const doc = documents.get(p.textDocument.uri);
    return doc ? hover(service, doc, p.position) : null;
  });
  connection.onCodeLens((p) => codeLenses(service, p.textDocument.uri));
  connection.onCodeAction((p) => codeActions(service, p.textDocument.uri, p.range, p.context.diagnostics));
  connection.onCompletion(async (p) => {
    const doc = documents.get(p.textDocument.uri);
    return doc ? completion(service, doc, p.position) : [];
  });
  connection.onShutdown(async () => {
    await jobs.dispose();
  });

  connection.listen();
  return service;
}

if (require.main === module) startServer(createConnection(ProposedFeatures.all));
