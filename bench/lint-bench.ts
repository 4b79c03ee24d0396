/**
 * Lint speed through the real language server (in a worker thread, over a message port, as the editor drives its
 * server process):
 *   1. the whole DialogSum train file (12,460 records) opened: time to the one publish, tokenization included;
 *   2. a one-line edit re-linted: time from the change to the publish of that version;
 *   3. a 200,000-line file: longest event-loop block, a hover answered mid-lint, edits abandoning the run.
 * Run: node --import tsx bench/lint-bench.ts [dialogsum-folder]   (default: ../shared/data/dialogsum)
 * CPU time is printed next to wall time: other processes on the machine inflate wall time, not CPU time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import { createProtocolConnection, PortMessageReader, PortMessageWriter } from 'vscode-languageserver/node';
import { LspClient, testEnv } from '../test/lsp/harness';

interface ServerThread {
  client: LspClient;
  /** The server thread's event-loop delay since the last reset. */
  loop(): Promise<{ maxMs: number; p99Ms: number; meanMs: number }>;
  reset(): void;
  stop(): Promise<void>;
}

async function startServerThread(root: string): Promise<ServerThread> {
  const { port1, port2 } = new MessageChannel();
  // Node 20 cannot start a .ts worker through --import tsx; register tsx's CommonJS hook inside the worker.
  const entry = path.join(__dirname, 'lint-server-worker.ts');
  const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(entry)});`, {
    eval: true,
    workerData: { port: port2, env: testEnv() },
    transferList: [port2],
  });
  const client = await LspClient.attach(createProtocolConnection(new PortMessageReader(port1), new PortMessageWriter(port1)), null, root);
  return {
    client,
    loop: () =>
      new Promise((resolve) => {
        worker.once('message', resolve);
        worker.postMessage('stats');
      }),
    reset: () => worker.postMessage('reset'),
    stop: async () => {
      client.dispose();
      port1.close();
      await worker.terminate();
    },
  };
}

const repo = path.resolve(__dirname, '..');
const dataDir = path.resolve(process.argv[2] ?? path.join(repo, '..', 'shared', 'data', 'dialogsum'));
const train = path.join(dataDir, 'dialogsum.train.jsonl');

function cpuMs(start: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function workspace(trainFile: string, extra: { validation?: string; test?: string } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-lint-bench-'));
  const data = [`train: ${trainFile}`, extra.validation ? `validation: ${extra.validation}` : '', extra.test ? `test: ${extra.test}` : ''].filter(Boolean).join(', ');
  fs.writeFileSync(
    path.join(dir, 'finetune.yaml'),
    `model: ${path.join(repo, 'samples', 'models', 'phi-2')}\nquantization: none\ndata: { ${data} }\ntemplate: ${path.join(repo, 'samples', 'dialogsum', 'summarize.prompt.yaml')}\nmax_length: 512\n`,
  );
  return dir;
}

async function fullFile(): Promise<{ wall: number; cpu: number; publishes: number; diagnostics: number; lens: string }> {
  const dir = workspace(train, { validation: path.join(dataDir, 'dialogsum.dev.jsonl'), test: path.join(dataDir, 'dialogsum.test.jsonl') });
  const server = await startServerThread(dir);
  const client = server.client;
  const text = fs.readFileSync(train, 'utf8');
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const uri = await client.open(train, text);
  const diagnostics = await client.diagnostics(uri, { timeoutMs: 120_000 });
  const wall = performance.now() - t0;
  const cpuTime = cpuMs(cpu);
  await new Promise((r) => setTimeout(r, 500));
  const lens = (await client.codeLens(uri))?.[0]?.command?.title ?? '';
  const publishes = client.publishesFor(uri).length;
  const edits = await editLatency(client, uri, text);
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  Object.assign(results, { edits });
  return { wall, cpu: cpuTime, publishes, diagnostics: diagnostics.length, lens };
}

const results: { edits?: { wall: number[]; cpu: number[] } } = {};

async function editLatency(client: LspClient, uri: string, text: string): Promise<{ wall: number[]; cpu: number[] }> {
  const lines = text.split('\n');
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < 20; i++) {
    const line = 1000 + i * 523;
    const at = lines[line]!.indexOf('"summary": "') + 12;
    const from = client.published.length;
    const c = process.cpuUsage();
    const t0 = performance.now();
    const version = await client.change(uri, [{ range: { start: { line, character: at }, end: { line, character: at } }, text: 'Edited: ' }]);
    await client.diagnostics(uri, { version, from });
    wall.push(performance.now() - t0);
    cpu.push(cpuMs(c));
  }
  return { wall, cpu };
}

async function bigFile(): Promise<Record<string, number | string>> {
  const source = fs.readFileSync(train, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { fname: string; dialogue: string; summary: string; topic: string });
  const lines: string[] = [];
  for (let i = 0; lines.length < 200_000; i++) {
    const r = source[i % source.length]!;
    lines.push(JSON.stringify({ fname: `${r.fname}_${i}`, dialogue: `${r.dialogue.slice(0, 160)} (${i})`, summary: r.summary.slice(0, 80), topic: r.topic }));
  }
  const text = `${lines.join('\n')}\n`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-lint-big-'));
  const file = path.join(dir, 'big.jsonl');
  fs.writeFileSync(file, text);
  const ws = workspace(file);
  const server = await startServerThread(ws);
  const client = server.client;
  server.reset();
  const t0 = performance.now();
  const uri = await client.open(file, text);
  // The first request answered marks the end of receiving the 66 MB didOpen (message decode, TextDocument).
  const h0 = performance.now();
  await client.hover(uri, 10, 5);
  const hoverMs = performance.now() - h0;
  const withOpen = await server.loop();
  server.reset();
  const h1 = performance.now();
  await client.hover(uri, 20, 5);
  const hover2Ms = performance.now() - h1;
  await client.change(uri, [{ range: { start: { line: 5, character: 0 }, end: { line: 5, character: 0 } }, text: '{"broken": \n' }]);
  await new Promise((r) => setTimeout(r, 300));
  const version = await client.change(uri, [{ range: { start: { line: 5, character: 0 }, end: { line: 6, character: 0 } }, text: '' }]);
  const diagnostics = await client.diagnostics(uri, { version, timeoutMs: 300_000 });
  const total = performance.now() - t0;
  const lintPhase = await server.loop();
  const published = client.publishesFor(uri).map((p) => p.version);
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(ws, { recursive: true, force: true });
  return {
    lines: 200_000,
    megabytes: +(Buffer.byteLength(text) / 1e6).toFixed(1),
    'server event-loop max block while receiving the didOpen (ms)': +withOpen.maxMs.toFixed(1),
    'server event-loop max block while linting, editing, publishing (ms)': +lintPhase.maxMs.toFixed(1),
    'server event-loop p99 delay while linting (ms)': +lintPhase.p99Ms.toFixed(1),
    'first hover after the didOpen (ms)': +hoverMs.toFixed(1),
    'hover during the lint (ms)': +hover2Ms.toFixed(1),
    publishedVersions: published.join(','),
    finalVersion: version,
    'ms from open to the final publish': Math.round(total),
    'diagnostics published (capped)': diagnostics.length,
  };
}

async function main(): Promise<void> {
  if (!fs.existsSync(train)) throw new Error(`DialogSum train file not found: ${train}`);
  console.log(`lint bench — node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const full = await fullFile();
  const edits = results.edits!;
  console.log(`\n1. DialogSum train (12,460 records, ${(fs.statSync(train).size / 1e6).toFixed(1)} MB), opened cold, tokenized with Phi-2's tokenizer:`);
  console.log(`   open -> publish: ${full.wall.toFixed(0)} ms wall, ${full.cpu.toFixed(0)} ms CPU; publishes: ${full.publishes}; diagnostics: ${full.diagnostics}`);
  console.log(`   CodeLens: ${full.lens}`);
  console.log(`\n2. one-line edit -> publish (20 edits): median ${median(edits.wall).toFixed(1)} ms wall (max ${Math.max(...edits.wall).toFixed(1)}), median ${median(edits.cpu).toFixed(1)} ms CPU`);
  const big = await bigFile();
  console.log('\n3. 200,000-line file (template + tokenizer), a hover mid-lint, an edit mid-lint, then another:');
  for (const [k, v] of Object.entries(big)) console.log(`   ${k}: ${v}`);
  console.log(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
