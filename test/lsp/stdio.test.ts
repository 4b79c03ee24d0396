/** The real entry point over real stdio: `node --import tsx server/src/server.ts --stdio`. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import {
  createProtocolConnection,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  PublishDiagnosticsNotification,
  ShutdownRequest,
  type PublishDiagnosticsParams,
} from 'vscode-languageserver/node';
import { fixtures, repo, testEnv } from './harness';

test('server.ts --stdio: initialize, lint a dataset against its config, shut down', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'server', 'src', 'server.ts'), '--stdio'], { cwd: repo, env: testEnv(), stdio: ['pipe', 'pipe', 'inherit'] });
  const connection = createProtocolConnection(child.stdout, child.stdin);
  const published = new Promise<PublishDiagnosticsParams>((resolve) => connection.onNotification(PublishDiagnosticsNotification.type, resolve));
  connection.onNotification('window/logMessage', () => {});
  connection.listen();
  const root = path.join(fixtures, 'duplicate');
  const init = await connection.sendRequest(InitializeRequest.type, { processId: process.pid, rootUri: pathToFileURL(root).href, workspaceFolders: null, capabilities: {} });
  assert.equal(init.serverInfo?.name, 'qlora-studio');
  assert.ok(init.capabilities.hoverProvider);
  await connection.sendNotification(InitializedNotification.type, {});
  const file = path.join(root, 'train.jsonl');
  const uri = pathToFileURL(file).href;
  await connection.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'jsonl', version: 1, text: fs.readFileSync(file, 'utf8') } });
  const p = await published;
  assert.equal(p.uri, uri);
  assert.deepEqual(p.diagnostics.map((d) => [d.code, d.range.start.line]), [['jsonl/duplicate', 2], ['jsonl/duplicate', 3]]);
  await connection.sendRequest(ShutdownRequest.type);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await connection.sendNotification(ExitNotification.type);
  assert.equal(await exited, 0);
  connection.dispose();
});
