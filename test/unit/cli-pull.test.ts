/**
 * `qlora-studio pull` (Ctrl-C included) and the `downloading` stage of train and eval: the real CLI (`runCli`, in-process) and the real engine
 * against engine/tests/hub_server.py, a local server speaking the Hugging Face hub's file protocol (HF_ENDPOINT points
 * the engine at it; HF_HUB_CACHE is a temp folder; downloads allowed for this engine only). It serves tiny-phi
 * (samples/models/tiny-phi) under several ids (one per test that downloads), one of them gated, throttled so a
 * download lasts about a second.
 * Skipped only when no engine Python can be found, saying why. One engine start (~10 s on a 2-core box) for all.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ErrorCodes } from '../../protocol/engine';
import { runCli } from '../../server/src/cli/main';
import { findPython } from '../../server/src/engine-client/python';
import { EngineSupervisor } from '../../server/src/engine-client/supervise';
import { cliContext, repo, tempDir, waitFor } from '../support/helpers';

const tiny = path.join(repo, 'samples', 'models', 'tiny-phi');
const samples = path.join(repo, 'samples', 'dialogsum');
/** What a pull of tiny-phi fetches: everything but its README. */
const pulled = fs.existsSync(tiny) ? fs.readdirSync(tiny).filter((f) => f !== 'README.md').sort() : [];

let python: string | null = null;
let skipReason: string | false = false;
try {
  python = findPython({ repoRoot: repo }).executable;
} catch (error) {
  skipReason = 'no engine Python environment (set QLORA_STUDIO_PYTHON or create <repo>/.venv)';
  process.stderr.write(`cli-pull tests SKIPPED — ${(error as Error).message}\n`);
}

let dir: string;
let hub: ChildProcess;
let endpoint: string;
let engine: EngineSupervisor;
/** The run the training test leaves (its adapter is evaluated after it). */
let trainedRun: string | null = null;

function env(): NodeJS.ProcessEnv {
  const { HF_TOKEN: _token, ...rest } = process.env;
  return {
    ...rest,
    QLORA_STUDIO_PYTHON: python ?? '',
    HF_ENDPOINT: endpoint,
    HF_HOME: path.join(dir, 'hf-home'), // no token stored on this machine is sent
    HF_HUB_CACHE: path.join(dir, 'hub-cache'),
    HF_HUB_OFFLINE: '0',
    TRANSFORMERS_OFFLINE: '0',
    HF_HUB_DISABLE_TELEMETRY: '1',
    TOKENIZERS_PARALLELISM: 'false',
  };
}

/** Starts hub_server.py and resolves with its URL (the first line it prints). */
function startHub(): Promise<string> {
  const script = path.join(repo, 'engine', 'tests', 'hub_server.py');
  const repos = ['tiny/phi', 'tiny/phi-train', 'tiny/phi-eval', 'tiny/phi-cancel', 'org/gated'].flatMap((id) => ['--repo', `${id}=${tiny}`]);
  hub = spawn(python!, [script, ...repos, '--gated', 'org/gated', '--throttle', '0.002'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  hub.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: hub.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
    hub.once('exit', (code) => reject(new Error(`hub_server.py exited ${code}: ${stderr}`)));
  });
}

async function cli(args: string[], during?: (run: ReturnType<typeof cliContext>) => Promise<void>) {
  const run = cliContext(dir, engine, env());
  const done = runCli(args, run.ctx);
  await during?.(run);
  const code = await done;
  const events = run.stdout.lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, stdout: run.stdout.text, stderr: run.stderr.text, events };
}

function engineIt(name: string, fn: (t: TestContext) => Promise<void>): void {
  it(name, { skip: skipReason }, fn);
}

describe('qlora-studio pull against a local hub', () => {
  before(async () => {
    if (skipReason) return;
    assert.ok(pulled.includes('model.safetensors'), `${tiny} is not built: python3 samples/models/make_tiny_phi.py`);
    dir = tempDir('qlora-cli-pull-');
    endpoint = await startHub();
    engine = new EngineSupervisor({ clientName: 'qlora-studio-test', python: () => python, env: env(), shutdownTimeoutMs: 20_000 });
  });
  after(async () => {
    if (skipReason) return;
    await engine.shutdown();
    hub.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  engineIt('pull --json reports growing bytes to the right total, then the snapshot; a second pull fetches nothing', async () => {
    const r = await cli(['pull', 'tiny/phi', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const progress = r.events.filter((e) => e.event === 'progress');
    const total = pulled.reduce((sum, f) => sum + fs.statSync(path.join(tiny, f)).size, 0);
    assert.ok(progress.length >= 2, `${progress.length} progress events`);
    const done = progress.map((e) => e.bytesDone as number);
    assert.deepEqual(done, [...done].sort((a, b) => a - b));
    assert.deepEqual(new Set(progress.map((e) => e.bytesTotal)), new Set([total]));
    assert.equal(done.at(-1), total);
    assert.ok(progress.some((e) => e.file === 'model.safetensors' && (e.bytesPerSecond as number) > 0));
    const result = r.events.at(-1)!;
    assert.equal(result.event, 'pulled');
    assert.deepEqual(Object.keys(result.files as object).sort(), pulled);
    assert.equal(result.bytes, total);
    const weights = path.join(result.folder as string, 'model.safetensors');
    assert.ok(fs.readFileSync(weights).equals(fs.readFileSync(path.join(tiny, 'model.safetensors'))));

    const again = await cli(['pull', 'tiny/phi']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Pulled tiny\/phi @ [0-9a-f]{12} → .*\n {2}9 files, 28\.8 MiB \(all already in the cache\)/);
  });

  engineIt('Ctrl-C stops a pull mid-file (exit 130), saying the bytes are kept; the next pull resumes from them', async () => {
    const weights = fs.statSync(path.join(tiny, 'model.safetensors')).size;
    const r = await cli(['pull', 'tiny/phi-cancel'], async (run) => {
      await waitFor(() => run.stderr.text.includes('model.safetensors'), 30_000, 'the weights downloading');
      run.signals.interrupt();
    });
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /Cancelled\. [\d.]+ MiB of 28\.8 MiB of tiny\/phi-cancel are kept in the Hugging Face cache; the next download resumes from there\.\n$/);
    const blobs = path.join(dir, 'hub-cache', 'models--tiny--phi-cancel', 'blobs');
    const partial = fs.readdirSync(blobs).filter((f) => f.endsWith('.incomplete'));
    assert.equal(partial.length, 1);
    const kept = fs.statSync(path.join(blobs, partial[0]!)).size;
    assert.ok(kept > 0 && kept < weights, `${kept} of ${weights} bytes kept`);

    const again = await cli(['pull', 'tiny/phi-cancel', '--json']);
    assert.equal(again.code, 0, again.stderr);
    const pulled = again.events.at(-1)!;
    assert.equal(pulled.downloadedBytes, weights - kept, 'only the bytes that had not arrived');
  });

  engineIt('a missing model exits 2 naming it; a gated one exits 2 saying to accept its license and set HF_TOKEN', async () => {
    const missing = await cli(['pull', 'tiny/nope', '--json']);
    assert.equal(missing.code, 2, missing.stderr);
    const error = missing.events.at(-1)!;
    assert.equal(error.code, ErrorCodes.ModelNotFound);
    assert.match(error.message as string, /'tiny\/nope' was not found on http:\/\/127\.0\.0\.1:\d+/);

    const gated = await cli(['pull', 'org/gated']);
    assert.equal(gated.code, 2);
    assert.match(gated.stderr, /'org\/gated' is gated: .*accepted its license at http:\/\/127\.0\.0\.1:\d+\/org\/gated/);
    assert.match(gated.stderr, /HF_TOKEN/);

    const folder = await cli(['pull', './models/x']);
    assert.equal(folder.code, 2);
    assert.match(folder.stderr, /not a hub id/);
  });

  engineIt('train with a hub id not in the cache downloads it as a stage before loading the model, then trains', async () => {
    const work = path.join(dir, 'train');
    fs.mkdirSync(work);
    for (const f of ['train.jsonl', 'validation.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(samples, f), path.join(work, f));
    const yaml = fs
      .readFileSync(path.join(samples, 'tiny.yaml'), 'utf8')
      .replace('model: ../models/tiny-phi', 'model: tiny/phi-train')
      .replace('data: { train: train.jsonl, validation: validation.jsonl, test: test.jsonl }', 'data: { train: train.jsonl, validation: validation.jsonl }')
      .replace(/max_length: \d+/, 'max_length: 256')
      .replace(/^ {2}(rouge_every|rouge_samples|best_metric):.*\n/gm, '');
    fs.writeFileSync(path.join(work, 'finetune.yaml'), yaml);
    const r = await cli(['train', path.join(work, 'finetune.yaml'), '--max-steps', '1', '--json', '--runs-dir', path.join(work, 'runs')]);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    const stages = r.events.filter((e) => e.event === 'stage');
    const downloads = stages.filter((e) => e.stage === 'downloading');
    assert.ok(downloads.length >= 2, `${downloads.length} downloading stages`);
    const last = downloads.at(-1)!.download as { model: string; bytesDone: number; bytesTotal: number };
    assert.equal(last.model, 'tiny/phi-train');
    assert.equal(last.bytesDone, last.bytesTotal);
    const order = [...new Set(stages.map((e) => e.stage))];
    assert.deepEqual(order.slice(0, 3), ['loading-data', 'downloading', 'loading-model']);
    assert.equal(r.events.at(-1)!.status, 'completed');
    trainedRun = r.events.at(-1)!.run_dir as string;
  });

  engineIt('eval with a hub model not in the cache downloads it before the first generation, then evaluates', async () => {
    assert.ok(trainedRun, 'the training test left a run');
    const work = path.join(dir, 'train');
    fs.copyFileSync(path.join(samples, 'test.jsonl'), path.join(work, 'test.jsonl'));
    const yaml = fs
      .readFileSync(path.join(work, 'finetune.yaml'), 'utf8')
      .replace('model: tiny/phi-train', 'model: tiny/phi-eval') // the same weights under an id not cached yet
      .replace('data: { train: train.jsonl, validation: validation.jsonl }', 'data: { train: train.jsonl, validation: validation.jsonl, test: test.jsonl }');
    fs.writeFileSync(path.join(work, 'eval.yaml'), yaml);
    const r = await cli(['eval', path.join(work, 'eval.yaml'), '--adapter', path.join(trainedRun!, 'adapter'), '--limit', '2', '--max-new-tokens', '4', '--json']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    const downloads = r.events.filter((e) => e.event === 'download');
    assert.ok(downloads.length >= 2, `${downloads.length} download events`);
    assert.ok(downloads.every((e) => e.model === 'tiny/phi-eval'));
    assert.equal(downloads.at(-1)!.bytesDone, downloads.at(-1)!.bytesTotal);
    const firstDownload = r.events.indexOf(downloads[0]!);
    const firstGenerated = r.events.findIndex((e) => e.event === 'progress' && (e.done as number) > 0);
    assert.ok(firstDownload < firstGenerated, 'the download comes before the first records are generated');
    assert.equal(r.events.at(-1)!.status, 'completed');
  });
});
