/**
 * The language server in a worker thread for bench/lint-bench.ts, as in the editor where it is its own process:
 * the bench's client work does not count against the server's event loop, which is measured here.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { createConnection, PortMessageReader, PortMessageWriter } from 'vscode-languageserver/node';
import { startServer } from '../server/src/server';

const { port, env } = workerData as { port: MessagePort; env: NodeJS.ProcessEnv };
startServer(createConnection(new PortMessageReader(port), new PortMessageWriter(port)), { env });
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
parentPort!.on('message', (message: string) => {
  if (message === 'reset') delay.reset();
  if (message === 'stats') parentPort!.postMessage({ maxMs: delay.max / 1e6, p99Ms: delay.percentile(99) / 1e6, meanMs: delay.mean / 1e6 });
});
