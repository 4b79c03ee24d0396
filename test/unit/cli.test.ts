/**
 * The CLI's commands run in-process against the fake engine (test/fixtures/fake-engine.mjs), one engine
 * process shared by every command as the real extension would: output formats, exit codes, run folders,
 * Ctrl-C and resume. cli-engine.test.ts runs the real CLI against the real Python engine.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatEngineError, locateEngineError } from '../../server/src/cli/subcommand';
import { runCli } from '../../server/src/cli/main';
import { formatBytes, formatCount, formatDownload, formatDuration } from '../../protocol/format';
import { ProgressLine, table } from '../../server/src/cli/output';
import type { DownloadProgress, EnvReport, GpuInfo, TrainDidProgressParams, TrainPlanResult } from '../../protocol/engine';
import type { ResolvedConfig } from '../../protocol/config';
import { formatEnvReport } from '../../server/src/cli/env';
import { formatPlan } from '../../server/src/cli/plan';
import { loadConfig } from '../../server/src/config/load';
import { listRuns } from '../../server/src/runs/registry';
import { cliContext, fakeSupervisor, tempDir, waitFor } from '../support/helpers';
import type { EngineSupervisor } from '../../server/src/engine-client/supervise';

let dir: string;
let engine: EngineSupervisor;

function writeConfig(name: string, model: string, maxSteps = 3): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `model: ${model}\ndata: { train: train.jsonl }\ntemplate: prompt.yaml\ntrain: { max_steps: ${maxSteps} }\n`);
  return file;
}

async function cli(args: string[], options: { tty?: boolean } = {}) {
  const run = cliContext(dir, engine);
  if (options.tty) Object.assign(run.stdout, { isTTY: true });
  const code = await runCli(args, run.ctx);
  return { code, stdout: run.stdout.text, stderr: run.stderr.text, events: parseEvents(run.stdout.text) };
}

function parseEvents(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

before(() => {
  dir = tempDir('qlora-cli-');
  fs.writeFileSync(path.join(dir, 'train.jsonl'), '{"dialogue":"a","summary":"b"}\n');
  fs.writeFileSync(path.join(dir, 'prompt.yaml'), 'prompt: "{{ dialogue }}"\nresponse: "{{ summary }}"\n');
  engine = fakeSupervisor({}, { FAKE_ENGINE_STEP_MS: '15' });
});
after(async () => {
  await engine.shutdown();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('cli: output', () => {
  it('formats bytes, counts and durations', () => {
    assert.deepEqual([formatBytes(512), formatBytes(1536), formatBytes(1.35 * 1024 ** 3), formatBytes(200 * 1024 ** 2)], ['512 B', '1.50 KiB', '1.35 GiB', '200 MiB']);
    assert.deepEqual([formatCount(2.78e9), formatCount(10_485_760), formatCount(999)], ['2.78B', '10.5M', '999']);
    assert.deepEqual([formatDuration(45), formatDuration(187), formatDuration(3725), formatDuration(Number.NaN)], ['45s', '3m 07s', '1h 02m', '—']);
  });

  it('aligns table columns, right-aligning the ones asked for', () => {
    assert.equal(table([['a', '1', 'x'], ['long', '100', 'y']], { right: [1] }), 'a       1  x\nlong  100  y');
  });

  it('keeps a TTY bar within the terminal width and logs lines above it', () => {
    const out = { text: '', isTTY: true, columns: 60, write(t: string) { this.text += t; } };
    const line = new ProgressLine(out);
    const p: TrainDidProgressParams = { runId: 'r', step: 3, totalSteps: 10, epoch: 0.3, loss: 2, learningRate: 1e-4, gradNorm: 1, tokensPerSecond: 100,
    tokens: 4096, gpuMemoryBytes: 3 * 1024 ** 3, elapsedSeconds: 3, etaSeconds: 7 };
    line.progress(p);
    line.log('checkpoint');
    for (const drawn of out.text.split('\r\x1b[2K').filter(Boolean)) {
      for (const row of drawn.split('\n')) assert.ok(row.length <= 59, `${row.length}: ${row}`);
    }
    assert.match(out.text, /\r\x1b\[2Kcheckpoint\nstep  3\/10 /);
  });

  it('shows a model download with bytes, speed and ETA: a bar on a TTY, a line per tenth elsewhere, one line in the editor', () => {
    const at = (done: number): DownloadProgress => ({ model: 'org/m', file: 'model.safetensors', bytesDone: done * 1024 ** 2, bytesTotal: 100 * 1024 ** 2, bytesPerSecond: 10 * 1024 ** 2, filesDone: 1, filesTotal: 2 });
    const tty = { text: '', isTTY: true, columns: 100, write(t: string) { this.text += t; } };
    new ProgressLine(tty).download(at(42));
    assert.equal(tty.text, '\r\x1b[2Korg/m ████████████░░░░░░░░░░░░░░░░  42%  42.0 MiB / 100 MiB  10.0 MiB/s  ETA 6s  model.safetensors');
    const plain = { text: '', write(t: string) { this.text += t; } };
    const line = new ProgressLine(plain);
    for (const done of [0, 3, 9, 10, 55, 56, 100]) line.download(at(done));
    assert.deepEqual(plain.text.split('\n').filter(Boolean).map((l) => l.split('  ').slice(0, 2).join(' ')), ['org/m 0%', 'org/m 10%', 'org/m 55%', 'org/m 100%']);
    assert.match(plain.text, /org\/m {2}100% {2}100 MiB \/ 100 MiB {2}10\.0 MiB\/s {2}done/);
    assert.equal(formatDownload(at(42)), 'Downloading org/m: 42.0 MiB of 100 MiB (42%), 10.0 MiB/s, ETA 6s');
  });
});

describe('cli: env and plan against a GPU', () => {
  const GiB = 1024 ** 3;
  const gpu: GpuInfo = { index: 0, name: 'NVIDIA H100 80GB HBM3', totalMemory: 80 * GiB, freeMemory: 79 * GiB, capability: [9, 0], bf16: true };
  const config = { model: 'microsoft/phi-2', quantization: 'nf4', lora: { r: 32 }, max_length: 2048, train: { micro_batch_size: 1, gradient_checkpointing: true } } as ResolvedConfig;
  const plan = (peak: number, device: GpuInfo | null): TrainPlanResult => ({
    baseParameters: 2.78e9,
    loraParameters: 2.6e7,
    peakBytes: peak,
    peakBytesWithCheckpointing: peak,
    peakBytesWithoutCheckpointing: peak * 2,
    terms: [
      { name: 'small', bytes: GiB, detail: 'd1' },
      { name: 'big', bytes: 2 * GiB, detail: 'd2' },
    ],
    device,
    fits: device ? peak <= device.freeMemory : null,
    picks: { microBatchSize: 1, gradientCheckpointing: true, tokensPerPass: 8192, compile: true, cudaGraphs: true, denseBase: true, strategy: 'ddp', reason: 'as configured' },
    devices: 1,
  });

  it('plan: terms largest first, both peaks, and the verdict against free memory', () => {
    const fits = formatPlan(plan(6 * GiB, gpu), config, 'phi-2.yaml');
    assert.match(fits, /^ {2}big +2\.00 GiB {2}d2\n {2}small +1\.00 GiB {2}d1$/m);
    assert.match(fits, /peak, gradient checkpointing on \(configured\) +6\.00 GiB/);
    assert.match(fits, /up to 8,192 tokens per forward pass/);
    assert.match(fits, /settings: micro_batch_size 1, gradient_checkpointing true, compile true, cuda_graphs true, dense_base true \(as configured\)/);
    assert.doesNotMatch(fits, /data parallel/);
    assert.match(formatPlan({ ...plan(6 * GiB, gpu), devices: 4 }, config, 'phi-2.yaml'), /data parallel over 4 devices \(train\.devices\): each holds the whole model, so the peak is per GPU/);
    const picked = formatPlan(plan(6 * GiB, gpu), { ...config, train: { ...config.train, gradient_checkpointing: 'auto' } }, 'x');
    assert.match(picked, /gradient_checkpointing auto → true/);
    assert.match(picked, /peak, gradient checkpointing on \(picked\)/);
    assert.match(fits, /peak, gradient checkpointing off +12\.0 GiB/);
    assert.match(fits, /GPU 0 NVIDIA H100 80GB HBM3: 79\.0 GiB free of 80\.0 GiB → fits \(73\.0 GiB to spare\)/);
    const tight = formatPlan(plan(90 * GiB, gpu), config, 'phi-2.yaml');
    assert.match(tight, /does NOT fit: 11\.0 GiB short; lower micro_batch_size or max_length/);
    assert.match(formatPlan(plan(GiB, null), config, 'x'), /no GPU detected/);
  });

  it('env: GPUs with memory, and what to do when bitsandbytes is missing', () => {
    const pkg = (version: string) => ({ available: true, version, error: null });
    const report: EnvReport = {
      python: { version: '3.11.7', executable: '/v/bin/python' },
      platform: 'Linux',
      torch: { ...pkg('2.5.1'), cuda: '12.4' },
      transformers: pkg('4.46.0'),
      peft: pkg('0.13.0'),
      accelerate: pkg('1.0.0'),
      bitsandbytes: { available: false, version: null, error: "No module named 'bitsandbytes'" },
      cuda: { available: true, devices: [gpu, { ...gpu, index: 1, name: 'Tesla T4', bf16: false, capability: [7, 5] }] },
    };
    const text = formatEnvReport(report);
    assert.match(text, /^torch +2\.5\.1 {2}\(CUDA 12\.4\)$/m);
    assert.match(text, /^bitsandbytes +not available: No module named 'bitsandbytes'$/m);
    assert.match(text, /\/v\/bin\/python -m pip install bitsandbytes/);
    assert.match(text, /^CUDA: 2 GPUs$/m);
    assert.match(text, /^ {2}GPU 0 +NVIDIA H100 80GB HBM3 +79\.0 GiB free of 80\.0 GiB +compute 9\.0 +bf16$/m);
    assert.match(text, /^ {2}GPU 1 +Tesla T4 .* compute 7\.5 +no bf16/m);
  });
});

describe('cli: engine error messages', () => {
  it('formats file:line field: message, folding a location the message repeats', () => {
    const cwd = '/w';
    assert.equal(formatEngineError({ message: 'bad', file: '/w/d/train.jsonl', line: 3, field: 'summary' }, cwd), 'd/train.jsonl:3 summary: bad');
    assert.equal(formatEngineError({ message: 'train.jsonl:3:32: invalid JSON', file: '/w/d/train.jsonl', line: 3 }, cwd), 'd/train.jsonl:3:32: invalid JSON');
    assert.equal(formatEngineError({ message: 'lora.r: too big', field: 'lora.r' }, cwd), 'lora.r: too big');
    assert.equal(formatEngineError({ message: 'out of memory' }, cwd), 'out of memory');
    assert.equal(formatEngineError({ message: 'gone', file: '/elsewhere/m' }, cwd), '/elsewhere/m: gone');
  });

  it('points an engine error that names a config field at that field in the config file', () => {
    const file = path.join(dir, 'located.yaml');
    fs.writeFileSync(file, 'model: x\nlora:\n  target_modules: [q_proj, nope]\n');
    const located = locateEngineError({ message: "lora.target_modules: 'nope' is not a linear layer", field: 'lora.target_modules' }, file);
    assert.deepEqual([located.file, located.line, located.column], [file, 3, 19]);
    assert.equal(formatEngineError(located, dir), "located.yaml:3:19 lora.target_modules: 'nope' is not a linear layer");
    const item = locateEngineError({ message: 'x', field: 'lora.target_modules[1]' }, file);
    assert.deepEqual([item.line, item.column], [3, 28]);
    assert.equal(locateEngineError({ message: 'x', field: 'train.seed' }, file).file, undefined, 'not in the file: no location');
  });
});

describe('cli: commands table', () => {
  it('prints usage with every command for --help, exit 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const name of ['train', 'plan', 'env', 'runs']) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
  });

  it('rejects an unknown command with usage, exit 2', async () => {
    const r = await cli(['tran']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "tran"/);
    assert.match(r.stderr, /Usage: qlora-studio <command>/);
  });

  it('rejects unknown options and missing arguments with the command usage, exit 2', async () => {
    const bad = await cli(['train', 'x.yaml', '--bogus']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown option '--bogus'/);
    assert.match(bad.stderr, /Usage: qlora-studio train/);
    const missing = await cli(['train']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing the config file/);
  });

  it('shows a command help with `help <command>` and `<command> --help`', async () => {
    assert.match((await cli(['help', 'plan'])).stdout, /Usage: qlora-studio plan/);
    assert.match((await cli(['train', '--help'])).stdout, /--resume <run-dir>/);
  });
});

describe('cli train (fake engine)', () => {
  it('--json prints one object per event, ending with end/completed, and tees stderr to engine.log', async () => {
    const config = writeConfig('ok.yaml', 'fake-model', 3);
    const r = await cli(['train', config, '--json', '--runs-dir', 'runs-json']);
    assert.equal(r.code, 0, r.stderr);
    const kinds = r.events.map((e) => e.event);
    assert.deepEqual(kinds, ['start', 'stage', 'progress', 'progress', 'progress', 'checkpoint', 'end']);
    const end = r.events.at(-1)!;
    assert.equal(end.status, 'completed');
    const runDir = end.run_dir as string;
    assert.equal(path.dirname(runDir), path.join(dir, 'runs-json'));
    assert.match(path.basename(runDir), /^\d{8}-\d{6}-ok$/);
    assert.equal(end.adapter, path.join(runDir, 'adapter'));
    assert.deepEqual(r.events[2], { event: 'progress', runId: path.basename(runDir), step: 1, totalSteps: 3, epoch: 1 / 3, loss: 3, learningRate: 0.001, gradNorm: 1, tokensPerSecond: 1234.5, gpuMemoryBytes: null, elapsedSeconds: 1, etaSeconds: 2 });
    const log = fs.readFileSync(path.join(runDir, 'engine.log'), 'utf8');
    assert.match(log, /fake engine: step 1\n/);
    assert.match(log, /fake engine: step 3\n/);
    const saved = loadConfig(path.join(runDir, 'config.yaml'));
    assert.ok(saved.ok, 'the saved config.yaml loads as a config');
    assert.equal(saved.config.data.train, path.join(dir, 'train.jsonl'));
  });

  it('prints plain progress lines off a TTY and where the adapter is', async () => {
    const r = await cli(['train', writeConfig('plain.yaml', 'fake-model', 2), '--runs-dir', 'runs-plain']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Run \d{8}-\d{6}-plain → runs-plain[/\\]\d{8}-\d{6}-plain {2}\(2 steps\)$/m);
    assert.match(r.stdout, /^Data: 8 training records, 2 validation; 1 dropped/m);
    assert.match(r.stdout, /^• training — ünïcödé ✓$/m);
    assert.match(r.stdout, /^step 1\/2 {2}loss 3\.0000 {2}lr 1\.00e-3 {2}1,235 tok\/s {2}ETA 1s$/m);
    assert.match(r.stdout, /^step 2\/2 {2}loss 1\.5000 .* took 2s$/m);
    assert.match(r.stdout, /^Adapter: runs-plain[/\\]\d{8}-\d{6}-plain[/\\]adapter$/m);
    assert.doesNotMatch(r.stdout, /\x1b\[/);
  });

  it('on several devices: tokens/s is the total and memory is each GPU’s, in rank order', async () => {
    const r = await cli(['train', writeConfig('two.yaml', 'fake-model', 1), '--devices', '2', '--runs-dir', 'runs-two']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^step 1\/1 {2}loss 3\.0000 {2}lr 1\.00e-3 {2}1,235 tok\/s total {2}mem 1\.00 GiB \| 2\.00 GiB {2}took 1s$/m);
    const json = await cli(['train', writeConfig('two-json.yaml', 'fake-model', 1), '--devices', '2', '--json', '--runs-dir', 'runs-two']);
    const progress = json.events.find((e) => e.event === 'progress')!;
    assert.deepEqual([progress.gpuMemoryBytes, progress.gpuMemoryPerDevice], [2 * 2 ** 30, [2 ** 30, 2 * 2 ** 30]]);
  });

  it('redraws one progress bar in place on a TTY', async () => {
    const r = await cli(['train', writeConfig('tty.yaml', 'fake-model', 2), '--runs-dir', 'runs-tty'], { tty: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\r\x1b\[2Kstep 1\/2 █+░+ {2}50% {2}loss 3\.0000/);
    assert.match(r.stdout, /\r\x1b\[2Kstep 2\/2 █+ 100%/);
  });

  it('config errors: file:line:col field: message on stderr, exit 2, engine not asked', async () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'model: fake\ndata: { train: missing.jsonl }\ntemplate: prompt.yaml\ntrain:\n  learning_rate: -0.001\n');
    const starts = engine.startCount;
    const r = await cli(['train', file, '--json', '--runs-dir', 'runs-bad']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'bad.yaml:5:18 train.learning_rate: must be > 0 (got -0.001)\n');
    assert.deepEqual(r.events, [{ event: 'error', file, line: 5, column: 18, field: 'train.learning_rate', message: 'must be > 0 (got -0.001)', flag: null }]);
    assert.equal(engine.startCount, starts);
    assert.equal(fs.existsSync(path.join(dir, 'runs-bad')), false);

    const steps = await cli(['train', writeConfig('ok2.yaml', 'fake'), '--max-steps', 'many']);
    assert.equal(steps.code, 2);
    assert.equal(steps.stderr, '--max-steps train.max_steps: must be an integer (got "many")\n');
  });

  it('engine bad-input errors exit 2 naming file and line, with the remedy, and leave no run folder', async () => {
    const r = await cli(['train', writeConfig('dataset.yaml', 'bad-dataset'), '--runs-dir', 'runs-dataset']);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      'train.jsonl:3: line 3 is not valid JSON: Expecting value\n  Fix the JSONL record named here (the Problems panel lists dataset problems), then start again.\n',
    );
    assert.deepEqual(listRuns(path.join(dir, 'runs-dataset')), []);
  });

  it('a failed run exits 1 and says where the engine log is', async () => {
    const r = await cli(['train', writeConfig('fail.yaml', 'fail'), '--runs-dir', 'runs-fail']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Failed at step 1: something broke at step 1$/m);
    assert.match(r.stderr, /^Engine log: runs-fail[/\\].*engine\.log$/m);
    const [run] = listRuns(path.join(dir, 'runs-fail'));
    assert.equal(run!.record!.status, 'failed');
    assert.match(fs.readFileSync(path.join(run!.dir, 'engine.log'), 'utf8'), /something broke/);
  });

  it('an engine crash exits 1 with its last stderr lines; the next command restarts the engine', async () => {
    const starts = engine.startCount;
    const r = await cli(['train', writeConfig('crash.yaml', 'crash'), '--runs-dir', 'runs-crash']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exited unexpectedly \(exit code 3\) during train\/start/);
    assert.match(r.stderr, /crash log line 25/);
    const again = await cli(['train', writeConfig('after.yaml', 'fake', 1), '--runs-dir', 'runs-after']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(engine.startCount, starts + 1);
  });

  it('Ctrl-C cancels (checkpoint saved, exit 130) and --resume continues from the checkpoint', async () => {
    const config = writeConfig('cancel.yaml', 'fake', 400);
    const run = cliContext(dir, engine);
    const done = runCli(['train', config, '--json', '--runs-dir', 'runs-cancel'], run.ctx);
    await waitFor(() => run.stdout.text.includes('"step":2,'), 5000, 'second progress event');
    run.signals.interrupt();
    const code = await done;
    assert.equal(code, 130);
    const events = parseEvents(run.stdout.text);
    assert.ok(events.some((e) => e.event === 'note' && /Cancelling/.test(String(e.message))));
    const end = events.at(-1)!;
    assert.equal(end.event, 'end');
    assert.equal(end.status, 'cancelled');
    const step = end.step as number;
    assert.ok(step >= 2 && step < 400);
    assert.equal(end.checkpointPath, path.join(end.run_dir as string, 'checkpoints', `step-${step}`));

    const resumed = await cli(['train', '--resume', path.relative(dir, end.run_dir as string), '--max-steps', String(step + 2), '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const start = resumed.events[0]!;
    assert.equal(start.event, 'start');
    assert.equal(start.startStep, step);
    assert.equal(start.resumed, true);
    assert.equal(resumed.events.filter((e) => e.event === 'progress').length, 2);
    assert.equal(resumed.events.at(-1)!.status, 'completed');
    const saved = loadConfig(path.join(end.run_dir as string, 'config.yaml'));
    assert.ok(saved.ok);
    assert.equal(saved.config.train.max_steps, step + 2, 'config.yaml records the extended max_steps');

    const done2 = await cli(['train', '--resume', end.run_dir as string]);
    assert.equal(done2.code, 2, 'nothing left to do without --max-steps');
    assert.match(done2.stderr, /already reached max_steps/);
  });

  it('a second Ctrl-C stops the engine at once (exit 130)', async () => {
    const run = cliContext(dir, engine);
    const done = runCli(['train', writeConfig('kill.yaml', 'fake', 400), '--runs-dir', 'runs-kill'], run.ctx);
    await waitFor(() => run.stdout.text.includes('step 1/400'), 5000, 'first progress line');
    run.signals.interrupt();
    run.signals.interrupt();
    assert.equal(await done, 130);
    assert.match(run.stdout.text, /Stopping the engine/);
    assert.match(run.stderr.text, /^Cancelled at step \d+\.$/m);
    assert.equal(engine.running, false);
  });

  it('--resume of a folder that is not a run is bad input', async () => {
    const r = await cli(['train', '--resume', 'nowhere']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^--resume: run folder not found: /);
  });
});

describe('cli env / plan / runs (fake engine)', () => {
  it('env prints the report and what to do about bitsandbytes; --json is the report', async () => {
    const r = await cli(['env']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Python {8}3\.12\.0 {2}\(\/fake\/python\)$/m);
    assert.match(r.stdout, /^torch +2\.0\.0 {2}\(CPU build\)$/m);
    assert.match(r.stdout, /^bitsandbytes +not available: No module named bitsandbytes$/m);
    assert.match(r.stdout, /pip install bitsandbytes/);
    assert.match(r.stdout, /no GPU detected/);
    const json = await cli(['env', '--json']);
    assert.equal((JSON.parse(json.stdout) as { platform: string }).platform, 'fake-platform');
  });

  it('plan prints terms largest first and "no GPU detected"; --json is the estimate', async () => {
    const config = writeConfig('plan.yaml', 'fake');
    const r = await cli(['plan', config]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const pid = lines.findIndex((l) => /^ {2}pid /.test(l));
    const weights = lines.findIndex((l) => /^ {2}weights +2 B {2}ünïcödé 🚀$/.test(l));
    assert.ok(pid > 0 && weights > pid, r.stdout);
    // The config leaves gradient_checkpointing at "auto"; the (fake) engine picked it off.
    assert.match(r.stdout, /peak, gradient checkpointing on +2\.00 KiB/);
    assert.match(r.stdout, /peak, gradient checkpointing off \(picked\) +4\.00 KiB/);
    assert.match(r.stdout, /settings: micro_batch_size 1, gradient_checkpointing auto → false, compile auto → false, cuda_graphs auto → false, dense_base auto → false \(no GPU: checkpointing off\)/);
    assert.match(r.stdout, /no GPU detected/);
    const json = await cli(['plan', config, '--json']);
    assert.equal((JSON.parse(json.stdout) as { peakBytesWithoutCheckpointing: number }).peakBytesWithoutCheckpointing, 4096);
    const bad = await cli(['plan', config, '--micro-batch-size', '0']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, '--micro-batch-size train.micro_batch_size: must be >= 1 (got 0)\n');
  });

  it('runs lists the runs folder', async () => {
    const r = await cli(['runs', '--runs-dir', 'runs-json']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d{8}-\d{6}-ok +completed +3\/3 /m);
    const json = await cli(['runs', '--runs-dir', 'runs-fail', '--json']);
    assert.equal(json.events[0]!.status, 'failed');
  });
});
