/**
 * The real CLI (`node --import tsx server/src/cli.ts`) against the real Python engine and the tiny
 * random-weight Phi model (samples/models/tiny-phi), offline, on whatever device the engine finds.
 * Skipped only when no engine Python can be found at all (QLORA_STUDIO_PYTHON or <repo>/.venv), saying why.
 *
 * An engine start costs ~10 s (importing torch, transformers, peft) on a 2-core CI box, so: the paths that
 * need a real process (exit codes, stdout JSON, Ctrl-C) run `node --import tsx server/src/cli.ts` as a child;
 * everything else runs the same `runCli` in-process against ONE shared engine process, as the extension would.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import type { EnvReport, TrainPlanResult } from '../../protocol/engine';
import { runCli } from '../../server/src/cli/main';
import { findPython } from '../../server/src/engine-client/python';
import { EngineSupervisor } from '../../server/src/engine-client/supervise';
import { listRuns, newestCheckpoint } from '../../server/src/runs/registry';
import { cliContext, repo, tempDir } from '../support/helpers';

const cliEntry = path.join(repo, 'server', 'src', 'cli.ts');
const tsxLoader = pathToFileURL(path.join(repo, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const samples = path.join(repo, 'samples', 'dialogsum');
const tinyYaml = path.join(samples, 'tiny.yaml');

let python: string | null = null;
let skipReason: string | false = false;
try {
  python = findPython({ repoRoot: repo }).executable;
} catch (error) {
  skipReason = 'no engine Python environment (set QLORA_STUDIO_PYTHON or create <repo>/.venv)';
  process.stderr.write(`cli-engine tests SKIPPED — ${(error as Error).message}\n`);
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  events: Record<string, unknown>[];
}

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  QLORA_STUDIO_PYTHON: python ?? '',
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  HF_DATASETS_OFFLINE: '1',
  TOKENIZERS_PARALLELISM: 'false',
});

/** Runs the CLI from source; `onStdout` sees output as it comes (to send Ctrl-C at the right moment). */
function qlora(args: string[], onStdout?: (text: string, child: ReturnType<typeof spawn>) => void, cwd = repo): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    // tsx by absolute URL: a bare `--import tsx` resolves from the working folder, which need not be the repo.
    const child = spawn(process.execPath, ['--import', tsxLoader, cliEntry, ...args], { cwd, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, signal, stdout, stderr, events });
    });
  });
}

/** Pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** The float32 tensors of a .safetensors file (the adapter's dtype), by name. */
function readSafetensors(file: string): Map<string, Float32Array> {
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, Float32Array>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(info.dtype, 'F32', `${name} is ${info.dtype}`);
    const [start, end] = info.data_offsets;
    const data = bytes.subarray(8 + headerLength + start, 8 + headerLength + end);
    out.set(name, new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
  }
  return out;
}

const explain = (r: CliRun) => `exit ${r.code}\n--- stderr\n${r.stderr}\n--- stdout (tail)\n${r.stdout.slice(-2000)}`;

let dir: string;

/** A copy of tiny.yaml in a temp folder (data and template copied beside it), with edits. */
function variant(name: string, edit: (yaml: string) => string, files: Record<string, string> = {}): string {
  const folder = path.join(dir, name);
  fs.mkdirSync(folder, { recursive: true });
  for (const f of ['train.jsonl', 'validation.jsonl', 'test.jsonl', 'summarize.prompt.yaml']) {
    fs.copyFileSync(path.join(samples, f), path.join(folder, f));
  }
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(folder, file), text);
  const yaml = fs
    .readFileSync(tinyYaml, 'utf8')
    .replace('model: ../models/tiny-phi', `model: ${path.join(repo, 'samples', 'models', 'tiny-phi')}`)
    .replace(/max_length: \d+/, 'max_length: 256');
  const file = path.join(folder, 'finetune.yaml');
  fs.writeFileSync(file, edit(yaml));
  return file;
}

function assertNoCompletedRun(runsDir: string): void {
  for (const run of listRuns(runsDir)) assert.notEqual(run.record?.status, 'completed', `${run.dir} says completed`);
}

/** Every test here is skipped, with the reason, when no engine Python exists; none passes without running. */
function engineIt(name: string, fn: (t: TestContext) => Promise<void>): void {
  it(name, { skip: skipReason }, fn);
}

/** One engine for the in-process commands, started by the first that needs it. */
let shared: EngineSupervisor;

/** `runCli` in-process against the shared engine; the same code path as the bin, one engine for all. */
async function inProcess(args: string[]): Promise<CliRun> {
  const run = cliContext(repo, shared, env());
  const code = await runCli(args, run.ctx);
  const events = run.stdout.lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, signal: null, stdout: run.stdout.text, stderr: run.stderr.text, events };
}

describe('cli against the real engine', () => {
  before(() => {
    dir = tempDir('qlora-cli-engine-');
    shared = new EngineSupervisor({ clientName: 'qlora-studio-test', python: () => python, env: env(), shutdownTimeoutMs: 20_000 });
  });
  after(async () => {
    await shared.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  engineIt('train samples/dialogsum/tiny.yaml --max-steps 5 --json (bin) completes with a PEFT adapter', async () => {
    const runsDir = path.join(dir, 'runs-ok');
    const r = await qlora(['train', tinyYaml, '--max-steps', '5', '--json', '--runs-dir', runsDir]);
    assert.equal(r.code, 0, explain(r));
    const end = r.events.at(-1)!;
    assert.equal(end.event, 'end');
    assert.equal(end.status, 'completed', explain(r));
    const runDir = end.run_dir as string;
    assert.equal(path.dirname(runDir), runsDir);
    assert.equal(end.adapter, path.join(runDir, 'adapter'));
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) assert.ok(fs.existsSync(path.join(runDir, 'adapter', f)), f);
    const progress = r.events.filter((e) => e.event === 'progress');
    assert.deepEqual(progress.map((e) => e.step), [1, 2, 3, 4, 5]);
    for (const p of progress) assert.ok(Number.isFinite(p.loss), 'finite loss');
    assert.equal(r.events[0]!.event, 'start');
    assert.ok((r.events[0]!.data as { trainRecords: number }).trainRecords > 0);
    const [run] = listRuns(runsDir);
    assert.equal(run!.record!.status, 'completed');
    assert.equal(run!.record!.step, 5);
    assert.ok(fs.statSync(path.join(runDir, 'engine.log')).size > 0, 'engine.log has the engine stderr');
    assert.ok(fs.existsSync(path.join(runDir, 'config.yaml')));
  });

  engineIt("export --merged and --gguf: the run's adapter merged into its base; an existing target, mixed options or a run without adapter exit 2", async () => {
    const runsDir = path.join(dir, 'runs-export');
    const trained = await inProcess(['train', variant('export', (y) => y), '--max-steps', '2', '--json', '--runs-dir', runsDir]);
    assert.equal(trained.code, 0, explain(trained));
    const runDir = trained.events.at(-1)!.run_dir as string;
    const out = path.join(dir, 'merged');
    const r = await inProcess(['export', runDir, '--merged', out, '--dtype', 'fp32', '--json']);
    assert.equal(r.code, 0, explain(r));
    const result = r.events.at(-1)!;
    assert.equal(result.event, 'exported');
    assert.deepEqual([result.dtype, result.trainedOnQuantization, result.out], ['float32', 'none', out]);
    assert.ok(r.events.some((e) => e.event === 'progress' && e.stage === 'merging the adapter'));
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'qlora-export.json']) assert.ok(fs.existsSync(path.join(out, f)), f);
    const again = await inProcess(['export', runDir, '--merged', out]);
    assert.equal(again.code, 2, explain(again));
    assert.match(again.stderr, /already exists; choose a new folder \(nothing is overwritten\)/);
    const gguf = path.join(dir, 'tiny.gguf');
    const g = await inProcess(['export', runDir, '--gguf', gguf, '--quant', 'q8_0', '--json']);
    assert.equal(g.code, 0, explain(g));
    assert.deepEqual([g.events.at(-1)!.architecture, g.events.at(-1)!.dtype], ['phi2', 'q8_0']);
    assert.equal(fs.readFileSync(gguf).subarray(0, 4).toString('latin1'), 'GGUF');
    for (const [args, message] of [
      [['--gguf', gguf], /already exists; choose a new file/],
      [['--gguf', path.join(dir, 'x.gguf'), '--merged', out], /not both/],
      [['--merged', path.join(dir, 'm3'), '--quant', 'q8_0'], /--quant goes with --gguf/],
      [['--gguf', path.join(dir, 'x.gguf'), '--quant', 'q4'], /--quant must be f16 or q8_0/],
    ] as const) {
      const bad = await inProcess(['export', runDir, ...args]);
      assert.equal(bad.code, 2, explain(bad));
      assert.match(bad.stderr, message);
    }
    fs.rmSync(path.join(runDir, 'adapter'), { recursive: true });
    const none = await inProcess(['export', runDir, '--merged', path.join(dir, 'merged-2')]);
    assert.equal(none.code, 2, explain(none));
    assert.match(none.stderr, /has no complete adapter\/ \(did its training complete\?\)/);
    assert.equal(fs.existsSync(path.join(dir, 'merged-2')), false);
  });

  engineIt('train --devices 2 runs two processes through torchrun (gloo on the CPU) and reports like one; --devices 0 exits 2', async () => {
    const runsDir = path.join(dir, 'runs-devices');
    const r = await inProcess(['train', variant('devices', (y) => y), '--devices', '2', '--max-steps', '2', '--json', '--runs-dir', runsDir]);
    assert.equal(r.code, 0, explain(r));
    const end = r.events.at(-1)!;
    assert.equal(end.status, 'completed', explain(r));
    assert.deepEqual(r.events.filter((e) => e.event === 'progress').map((e) => e.step), [1, 2]);
    const runDir = end.run_dir as string;
    assert.match(fs.readFileSync(path.join(runDir, 'config.yaml'), 'utf8'), /devices: 2/);
    for (const rank of [0, 1]) assert.match(fs.readFileSync(path.join(runDir, 'workers', `rank-${rank}.log`), 'utf8'), new RegExp(`rank ${rank} of 2`));
    const bad = await inProcess(['train', variant('devices-0', (y) => y), '--devices', '0', '--runs-dir', runsDir]);
    assert.equal(bad.code, 2, explain(bad));
    assert.match(bad.stderr, /--devices train\.devices: /);
  });

  engineIt('chat data: samples/chat/tiny.yaml (ShareGPT, detected) trains, and eval prompts through the chat template, scored against the last assistant turn', async () => {
    const runsDir = path.join(dir, 'runs-chat');
    const chatYaml = path.join(repo, 'samples', 'chat', 'tiny.yaml');
    const trained = await inProcess(['train', chatYaml, '--max-steps', '2', '--json', '--runs-dir', runsDir]);
    assert.equal(trained.code, 0, explain(trained));
    const runDir = trained.events.at(-1)!.run_dir as string;
    assert.match(fs.readFileSync(path.join(runDir, 'config.yaml'), 'utf8'), /format: sharegpt/);
    const out = path.join(dir, 'chat-eval');
    const r = await inProcess(['eval', '--adapter', runDir, '--split', 'validation', '--limit', '3', '--max-new-tokens', '4', '--out', out, '--json']);
    assert.equal(r.code, 0, explain(r));
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as { template: string; referenceFields: string[]; generation: { stop: string[] }; examples: { references: string[]; input: string }[] };
    assert.equal(report.template, path.join(repo, 'samples', 'chat', 'chatml.jinja'));
    assert.deepEqual([report.referenceFields, report.generation.stop], [['the last assistant turn'], ['<|im_end|>']]);
    const records = fs.readFileSync(path.join(repo, 'samples', 'chat', 'sharegpt.validation.jsonl'), 'utf8').split('\n').slice(0, 3).map((l) => JSON.parse(l) as { conversations: { value: string }[] });
    assert.deepEqual(report.examples.map((e) => e.references), records.map((c) => [c.conversations.at(-1)!.value]));
    assert.deepEqual(report.examples.map((e) => e.input), records.map((c) => c.conversations.at(-2)!.value));

    // A malformed conversation: exit 2 naming the file, line and field, before anything is written.
    const badDir = path.join(dir, 'chat-bad');
    fs.mkdirSync(badDir);
    const lines = fs.readFileSync(path.join(repo, 'samples', 'chat', 'sharegpt.jsonl'), 'utf8').split('\n').slice(0, 3);
    lines[1] = lines[1]!.replace('"from": "gpt"', '"from": "bot"');
    fs.writeFileSync(path.join(badDir, 'train.jsonl'), `${lines.join('\n')}\n`);
    const badYaml = path.join(badDir, 'finetune.yaml');
    fs.writeFileSync(badYaml, `model: ${path.join(repo, 'samples', 'models', 'tiny-phi')}\nquantization: none\ndata: { train: train.jsonl, validation_split: 0 }\nchat_template: ${path.join(repo, 'samples', 'chat', 'chatml.jinja')}\n`);
    const bad = await inProcess(['train', badYaml, '--max-steps', '1', '--runs-dir', path.join(badDir, 'runs')]);
    assert.equal(bad.code, 2, explain(bad));
    assert.match(bad.stderr, /train\.jsonl:2.*conversations\[1\]\.from: unknown role "bot"/);
    assert.equal(fs.existsSync(path.join(badDir, 'runs')) && listRuns(path.join(badDir, 'runs')).length > 0, false);
  });

  engineIt('bad input (bin): exit 2 with file:line:col field: message on stderr, before the engine starts', async () => {
    const runsDir = path.join(dir, 'runs-bad-bin');
    const r = await qlora(['train', variant('lr-bin', (y) => y.replace('learning_rate: 1.0e-2', 'learning_rate: -0.001')), '--runs-dir', runsDir, '--json']);
    assert.equal(r.code, 2, explain(r));
    assert.match(r.stderr, /^\S*finetune\.yaml:\d+:18 train\.learning_rate: must be > 0 \(got -0\.001\)$/m);
    assert.equal(r.events[0]!.event, 'error');
    assert.equal(fs.existsSync(runsDir), false);
  });

  engineIt('import: a GGUF file becomes a model folder; again, nothing is written; truncated and unsupported files exit 2', async () => {
    const ggufs = path.join(dir, 'gguf');
    const made = spawnSync(python!, [path.join(repo, 'engine', 'tests', 'tiny_gguf.py'), ggufs], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const out = path.join(dir, 'imported-llama');
    const first = await inProcess(['import', path.join(ggufs, 'good.gguf'), '--out', out, '--json']);
    assert.equal(first.code, 0, explain(first));
    const result = first.events.at(-1)!;
    assert.equal(result.event, 'imported');
    assert.equal(result.skipped, false);
    assert.equal(result.architecture, 'llama');
    assert.deepEqual(result.tensorTypes, ['F32', 'Q8_0']);
    assert.ok(first.events.some((e) => e.event === 'progress' && e.stage === 'saving'), 'progress reported');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'qlora-import.json']) assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.equal((JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { model_type: string }).model_type, 'llama');
    const written = fs.statSync(path.join(out, 'model.safetensors')).mtimeMs;
    const again = await inProcess(['import', path.join(ggufs, 'good.gguf'), '--out', out]);
    assert.equal(again.code, 0, explain(again));
    assert.match(again.stdout, /^Already imported /);
    assert.equal(fs.statSync(path.join(out, 'model.safetensors')).mtimeMs, written, 'an intact import is not rewritten');
    // The folder is a model the engine trains: the plan reads it like any other.
    const plan = await inProcess(['plan', variant('imported', (y) => y.replace(/model: .*/, `model: ${out}`).replace(/target_modules: \[.*\]/, 'target_modules: [q_proj, v_proj]')), '--json']);
    assert.equal(plan.code, 0, explain(plan));

    const truncated = await inProcess(['import', path.join(ggufs, 'truncated.gguf'), '--out', path.join(dir, 'imported-truncated')]);
    assert.equal(truncated.code, 2, explain(truncated));
    assert.match(truncated.stderr, /truncated\.gguf: .*not a readable GGUF file \(truncated or corrupt\?\)/);
    const unsupported = await inProcess(['import', path.join(ggufs, 'unsupported-arch.gguf'), '--out', path.join(dir, 'imported-rwkv')]);
    assert.equal(unsupported.code, 2, explain(unsupported));
    assert.match(unsupported.stderr, /general\.architecture: .*architecture 'rwkv6' cannot be imported \(transformers reads GGUF of: .*llama.*phi3/);
    for (const name of ['imported-truncated', 'imported-rwkv']) assert.equal(fs.existsSync(path.join(dir, name)), false, `${name} was written`);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.importing-')), [], 'no staging folder left behind');
  });

  let cancelledRun: string | null = null;
  let cancelledStep = 0;
  engineIt('Ctrl-C (bin) cancels with a checkpoint and exits 130', async () => {
    const runsDir = path.join(dir, 'runs-cancel');
    // One record per step and no periodic checkpoints: the checkpoint can only come from the cancel.
    const config = variant('cancel', (y) =>
      y
        .replace('micro_batch_size: 4', 'micro_batch_size: 1')
        .replace('save_every: 40', 'save_every: 0')
        .replace('eval_every: 40', 'eval_every: 0')
        .replace(/rouge_every: 40.*/, 'rouge_every: 0')
        .replace(/best_metric: rouge1.*/, 'best_metric: null'),
    );
    let sent = false;
    const r = await qlora(['train', config, '--max-steps', '200', '--json', '--runs-dir', runsDir], (out, child) => {
      if (!sent && out.includes('"event":"progress"')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    assert.equal(r.code, 130, explain(r));
    const end = r.events.at(-1)!;
    assert.equal(end.status, 'cancelled', explain(r));
    const runDir = end.run_dir as string;
    const checkpoint = newestCheckpoint(runDir);
    assert.ok(checkpoint, 'a checkpoint was saved on cancel');
    assert.equal(end.checkpointPath, checkpoint.path);
    assert.ok(checkpoint.step >= 1 && checkpoint.step < 200);
    assert.equal(listRuns(runsDir)[0]!.record!.status, 'cancelled');
    cancelledRun = runDir;
    cancelledStep = checkpoint.step;
  });

  engineIt('--resume --max-steps continues the cancelled run from its checkpoint to completion', async (t) => {
    if (!cancelledRun) return t.skip('the cancel test did not leave a run');
    const r = await inProcess(['train', '--resume', cancelledRun, '--max-steps', String(cancelledStep + 2), '--json']);
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.events[0]!.startStep, cancelledStep);
    assert.deepEqual(
      r.events.filter((e) => e.event === 'progress').map((e) => e.step),
      [cancelledStep + 1, cancelledStep + 2],
    );
    const last = r.events.at(-1)!;
    assert.equal(last.status, 'completed');
    assert.equal(last.run_dir, cancelledRun);
    assert.ok(fs.existsSync(path.join(cancelledRun, 'adapter', 'adapter_model.safetensors')));
  });

  engineIt('env --json is the engine report; env prints it', async () => {
    const r = await inProcess(['env', '--json']);
    assert.equal(r.code, 0, explain(r));
    const report = JSON.parse(r.stdout) as EnvReport;
    assert.match(report.python.version, /^3\.\d+/);
    assert.equal(report.torch.available, true, 'torch must be importable in the engine environment');
    assert.equal(typeof report.cuda.available, 'boolean');
    const text = await inProcess(['env']);
    assert.equal(text.code, 0, explain(text));
    assert.match(text.stdout, /^torch +\d/m);
    assert.match(text.stdout, /^CUDA: /m);
  });

  engineIt('kill -9 of the engine mid-run: the CLI reports the crash, and --resume ends where an uninterrupted run ends', async (t) => {
    if (process.platform !== 'linux') return t.skip('finds the engine process through /proc');
    const edit = (yaml: string): string =>
      yaml
        .replace(/max_steps: \d+/, 'max_steps: 10')
        .replace(/save_every: \d+/, 'save_every: 2')
        .replace(/eval_every: \d+/, 'eval_every: 0')
        .replace(/rouge_every: \d+.*/, 'rouge_every: 0')
        .replace(/best_metric: .*/, 'best_metric: null');
    const config = variant('kill', edit);
    const runsDir = path.join(dir, 'runs-kill');
    let killed = 0;
    const crashed = await qlora(['train', config, '--json', '--runs-dir', runsDir], (text, child) => {
      if (killed || !/"step":\s*5\b/.test(text)) return;
      killed = childrenOf(child.pid!)[0] ?? -1;
      if (killed > 0) process.kill(killed, 'SIGKILL');
    });
    assert.ok(killed > 0, `no engine process found to kill\n${explain(crashed)}`);
    assert.notEqual(crashed.code, 0, explain(crashed));
    const end = crashed.events.at(-1)!;
    assert.equal(end.status, 'failed', explain(crashed));
    const message = String((end.error as { message?: string } | null)?.message);
    assert.match(message, /the engine exited unexpectedly/);
    assert.match(message, /SIGKILL/);
    assert.match(message, /Last lines of the engine's stderr/, 'the crash quotes the engine log');
    const runDir = end.run_dir as string;
    assert.ok(fs.existsSync(end.log as string), 'the engine log is kept');
    const resumed = await qlora(['train', '--resume', runDir, '--json']);
    assert.equal(resumed.code, 0, explain(resumed));
    assert.equal(resumed.events.at(-1)!.status, 'completed', explain(resumed));
    const whole = await qlora(['train', config, '--json', '--runs-dir', path.join(dir, 'runs-whole')]);
    assert.equal(whole.events.at(-1)!.status, 'completed', explain(whole));
    const a = readSafetensors(path.join(runDir, 'adapter', 'adapter_model.safetensors'));
    const b = readSafetensors(path.join(whole.events.at(-1)!.run_dir as string, 'adapter', 'adapter_model.safetensors'));
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [name, values] of a) {
      const other = b.get(name)!;
      let worst = 0;
      for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i]! - other[i]!));
      assert.ok(worst <= 1e-5, `${name} differs by ${worst}`);
    }
  });

  engineIt('plan and train import nothing from the folder the CLI runs in (yaml.py, datasets/, tokenizers.py)', async () => {
    const hostile = path.join(dir, 'hostile');
    const plant = (module: string, file: string): void => {
      fs.mkdirSync(path.dirname(path.join(hostile, file)), { recursive: true });
      const marker = JSON.stringify(path.join(hostile, `MARKER-${module}`));
      fs.writeFileSync(path.join(hostile, file), `open(${marker}, "w").write("ran")\nraise ImportError("planted ${module}")\n`);
    };
    const config = variant('hostile', (yaml) => yaml);
    plant('yaml', 'yaml.py');
    plant('datasets', 'datasets/__init__.py');
    plant('tokenizers', 'tokenizers.py');
    const r = await qlora(['plan', config, '--json'], undefined, hostile);
    assert.equal(r.code, 0, explain(r));
    assert.ok((JSON.parse(r.stdout) as TrainPlanResult).baseParameters > 0);
    assert.deepEqual(fs.readdirSync(hostile).filter((f) => f.startsWith('MARKER-')), [], 'a planted module ran (plan)');
    const trained = await qlora(['train', config, '--max-steps', '1', '--json', '--runs-dir', path.join(dir, 'runs-hostile')], undefined, hostile);
    assert.equal(trained.events.at(-1)?.status, 'completed', explain(trained));
    assert.deepEqual(fs.readdirSync(hostile).filter((f) => f.startsWith('MARKER-')), [], 'a planted module ran (train)');
  });

  engineIt('plan --json estimates tiny.yaml; plan prints the table', async () => {
    const r = await inProcess(['plan', tinyYaml, '--json']);
    assert.equal(r.code, 0, explain(r));
    const plan = JSON.parse(r.stdout) as TrainPlanResult;
    assert.ok(plan.baseParameters > 0 && plan.loraParameters > 0);
    assert.ok(plan.terms.length > 0);
    for (let i = 1; i < plan.terms.length; i++) assert.ok(plan.terms[i - 1]!.bytes >= plan.terms[i]!.bytes, 'largest first');
    assert.equal(plan.peakBytes, plan.peakBytesWithoutCheckpointing, 'tiny.yaml has gradient_checkpointing: false');
    assert.equal(plan.fits === null, plan.device === null);
    const text = await inProcess(['plan', tinyYaml]);
    assert.equal(text.code, 0, explain(text));
    assert.match(text.stdout, /peak, gradient checkpointing off \(configured\)/);
  });

  describe('bad input exits 2 naming file, line and field, and completes no run', () => {
    const badInputs: [string, () => string, RegExp][] = [
      ['missing data file', () => variant('nodata', (y) => y.replace('train: train.jsonl', 'train: missing.jsonl')), /finetune\.yaml:\d+:\d+ data\.train: file not found: .*missing\.jsonl/],
      ['nonexistent model folder', () => variant('nomodel', (y) => y.replace(/model: .*/, 'model: ./models/absent')), /finetune\.yaml:\d+:8 model: model folder not found: .*absent/],
      ['negative learning rate', () => variant('lr', (y) => y.replace('learning_rate: 1.0e-2', 'learning_rate: -0.001')), /finetune\.yaml:\d+:18 train\.learning_rate: must be > 0 \(got -0\.001\)/],
      [
        'malformed JSONL line',
        () => {
          const lines = fs.readFileSync(path.join(samples, 'train.jsonl'), 'utf8').split('\n');
          lines[2] = '{"dialogue": "no closing brace"';
          return variant('jsonl', (y) => y, { 'train.jsonl': lines.join('\n') });
        },
        /^\S*jsonl[/\\]train\.jsonl:3(:\d+)?: invalid JSON/m,
      ],
      [
        'unknown template variable',
        () => variant('template', (y) => y, { 'summarize.prompt.yaml': 'prompt: "Summarize: {{ dialog }}\\nOutput:"\nresponse: "{{ summary }}"\n' }),
        /^\S*train\.jsonl:1 dialog: .*summarize\.prompt\.yaml/m,
      ],
      ['wrong target module', () => variant('target', (y) => y.replace('target_modules: [q_proj, k_proj, v_proj, dense, fc1, fc2, lm_head]', 'target_modules: [q_proj, query_key_value]')), /^\S*finetune\.yaml:\d+:\d+ lora\.target_modules: 'query_key_value' is not a linear layer/m],
    ];
    for (const [what, make, expected] of badInputs) {
      engineIt(what, async (t) => {
        const runsDir = path.join(dir, `runs-bad-${what.replace(/\W+/g, '-')}`);
        const r = await inProcess(['train', make(), '--max-steps', '2', '--runs-dir', runsDir]);
        t.diagnostic(r.stderr.trim().replaceAll(dir, '<tmp>'));
        assert.equal(r.code, 2, explain(r));
        assert.match(r.stderr, expected, explain(r));
        assertNoCompletedRun(runsDir);
      });
    }
  });
});
