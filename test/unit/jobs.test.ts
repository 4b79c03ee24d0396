/** The language server's job manager against the fake engine: training events forwarded, problems as values. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as L from '../../protocol/lsp';
import { loadConfig } from '../../server/src/config/load';
import { runForGeneration } from '../../server/src/jobs/generate';
import { bindChatInput, bindInput } from '../../server/src/summarize/input';
import { JobManager } from '../../server/src/jobs/index';
import { completedRun as makeCompletedRun, launchFakeEngine, repo, tempDir, waitFor } from '../support/helpers';

type Sent = { method: string; params: any };

function manager(env: Record<string, string> = {}): { jobs: JobManager; sent: Sent[] } {
  const sent: Sent[] = [];
  const jobs = new JobManager({ sendNotification: (async (method: string, params: unknown) => void sent.push({ method, params })) as never }, async () => '', {
    launch: launchFakeEngine(env),
    repoRoot: repo,
  });
  return { jobs, sent };
}

/** A valid config next to a copy of the sample data (the fake engine ignores the model, the loader checks paths). */
function project(dir: string, maxSteps = 3): string {
  for (const f of ['train.jsonl', 'validation.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(repo, 'samples/dialogsum', f), path.join(dir, f));
  fs.mkdirSync(path.join(dir, 'model'), { recursive: true });
  const file = path.join(dir, 'finetune.yaml');
  fs.writeFileSync(
    file,
    `model: ./model\nquantization: none\ndata: { train: train.jsonl, validation: validation.jsonl }\ntemplate: summarize.prompt.yaml\ntrain: { max_steps: ${maxSteps} }\n`,
  );
  return file;
}

describe('JobManager (fake engine)', () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));

  it('exports a completed run merged, forwarding progress; an existing folder or a run without adapter is a problem', async () => {
    const { jobs, sent } = manager();
    const sub = path.join(dir, 'export');
    fs.mkdirSync(sub);
    const r = await jobs.trainStart({ configPath: project(sub, 2), runsDir: path.join(sub, 'runs'), resumeRunDir: null });
    const runDir = r.started!.runDir;
    await waitFor(() => sent.some((s) => s.method === L.TrainDidEnd), 5000, 'train/didEnd');
    const out = path.join(sub, 'merged');
    const done = await jobs.modelExport({ runDir, out, dtype: 'bfloat16' });
    assert.equal(done.problem, null, JSON.stringify(done.problem));
    assert.deepEqual([done.exported!.out, done.exported!.dtype, done.exported!.adapter], [out, 'bfloat16', path.join(runDir, 'adapter')]);
    const stages = sent.filter((s) => s.method === L.ModelDidProgress).map((s) => s.params as L.ModelDidProgressParams);
    assert.deepEqual(stages.map((p) => p.stage), ['loading the base model', 'merging the adapter', 'saving', 'done']);
    assert.ok(stages.every((p) => p.runDir === runDir));
    const again = await jobs.modelExport({ runDir, out, dtype: 'bfloat16' });
    assert.equal(again.exported, null);
    assert.deepEqual([again.problem?.code, again.problem?.file], [L.JobErrorCodes.RunNotUsable, out]);
    const noRun = await jobs.modelExport({ runDir: path.join(sub, 'nope'), out: path.join(sub, 'merged-2'), dtype: 'float32' });
    assert.equal(noRun.problem?.code, L.JobErrorCodes.RunNotUsable);
    await jobs.dispose();
  });

  it('trains: forwards stage/progress/checkpoint/end with the run folder, saves config.yaml and engine.log', async () => {
    const { jobs, sent } = manager();
    const config = project(dir);
    const runsDir = path.join(dir, 'runs');
    const r = await jobs.trainStart({ configPath: config, runsDir, resumeRunDir: null });
    assert.equal(r.problem, null);
    const started = r.started!;
    assert.equal(path.dirname(started.runDir), runsDir);
    assert.equal(started.configPath, config);
    assert.deepEqual(jobs.list().jobs.map((j) => j.runId), [started.runId]);
    await waitFor(() => sent.some((s) => s.method === L.TrainDidEnd), 5000, 'train/didEnd');
    const progress = sent.filter((s) => s.method === L.TrainDidProgress);
    assert.deepEqual(progress.map((p) => p.params.step), [1, 2, 3]);
    assert.ok(progress.every((p) => p.params.runDir === started.runDir && p.params.runId === started.runId));
    const end = sent.find((s) => s.method === L.TrainDidEnd)!.params as L.TrainDidEndParams;
    assert.equal(end.status, 'completed');
    assert.equal(end.runDir, started.runDir);
    assert.ok(end.checkpointPath?.endsWith('step-3'), 'the newest checkpoint is named');
    assert.deepEqual(jobs.list().jobs, []);
    const states = sent.filter((s) => s.method === L.EngineDidChangeState).map((s) => s.params.state);
    assert.deepEqual([states[0], states.at(-1)], ['starting', 'ready']);
    assert.ok(states.includes('busy'));
    assert.ok(fs.existsSync(path.join(started.runDir, 'config.yaml')));
    await jobs.dispose();
    assert.match(fs.readFileSync(path.join(started.runDir, 'engine.log'), 'utf8'), /fake engine: step 3/);
    assert.ok(sent.some((s) => s.method === L.EngineDidLog && /fake engine: step/.test(s.params.text)), 'the engine log reaches the client');
  });

  it('refuses a second run while one trains, and cancels the first', async () => {
    const { jobs, sent } = manager({ FAKE_ENGINE_STEP_MS: '200' });
    const config = project(dir, 50);
    const runsDir = path.join(dir, 'runs2');
    const first = await jobs.trainStart({ configPath: config, runsDir, resumeRunDir: null });
    const second = await jobs.trainStart({ configPath: config, runsDir, resumeRunDir: null });
    assert.equal(second.started, null);
    assert.equal(second.problem?.code, L.JobErrorCodes.AlreadyRunning);
    assert.deepEqual(await jobs.trainCancel({ runId: first.started!.runId }), { cancelling: true });
    await waitFor(() => sent.some((s) => s.method === L.TrainDidEnd), 5000, 'train/didEnd');
    assert.equal(sent.find((s) => s.method === L.TrainDidEnd)!.params.status, 'cancelled');
    assert.deepEqual(await jobs.trainCancel({ runId: first.started!.runId }), { cancelling: false });
    // Resume continues the same folder from its checkpoint.
    const cancelledAt = sent.find((s) => s.method === L.TrainDidEnd)!.params.step as number;
    sent.length = 0;
    const resumed = await jobs.trainStart({ configPath: '', runsDir, resumeRunDir: first.started!.runDir });
    assert.equal(resumed.problem, null);
    assert.equal(resumed.started!.runDir, first.started!.runDir);
    assert.equal(resumed.started!.startStep, cancelledAt);
    await jobs.trainCancel({ runId: resumed.started!.runId });
    await waitFor(() => sent.some((s) => s.method === L.TrainDidEnd), 5000, 'train/didEnd after resume');
    await jobs.dispose();
  });

  it('an invalid config is a ConfigInvalid problem at its line, and starts no engine', async () => {
    const { jobs, sent } = manager();
    const sub = path.join(dir, 'bad');
    fs.mkdirSync(sub);
    const config = project(sub);
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('max_steps: 3', 'max_steps: -1'));
    const r = await jobs.trainStart({ configPath: config, runsDir: path.join(sub, 'runs'), resumeRunDir: null });
    assert.equal(r.started, null);
    assert.equal(r.problem?.code, L.JobErrorCodes.ConfigInvalid);
    assert.equal(r.problem?.file, config);
    assert.equal(r.problem?.line, 5);
    assert.equal(r.problem?.field, 'train.max_steps');
    assert.equal(sent.length, 0);
    await jobs.dispose();
  });

  it('an engine error is a problem with the engine code and a fix', async () => {
    const { jobs } = manager();
    const sub = path.join(dir, 'baddata');
    fs.mkdirSync(sub);
    const config = project(sub);
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('model: ./model', 'model: bad-dataset'));
    const r = await jobs.trainStart({ configPath: config, runsDir: path.join(sub, 'runs'), resumeRunDir: null });
    await jobs.dispose();
    assert.equal(r.problem?.code, -32004);
    assert.equal(r.problem?.line, 3);
    assert.match(r.problem?.fix ?? '', /Problems panel/);
  });

  it('evaluating a run without an adapter is a problem before any engine starts', async () => {
    const { jobs, sent } = manager();
    const config = project(path.join(dir, 'bad'));
    const run = path.join(dir, 'runs-eval', 'r1');
    fs.mkdirSync(run, { recursive: true });
    fs.copyFileSync(config, path.join(run, 'config.yaml'));
    for (const f of ['train.jsonl', 'validation.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(dir, 'bad', f), path.join(run, f));
    fs.mkdirSync(path.join(run, 'model'), { recursive: true });
    fs.writeFileSync(path.join(run, 'run.json'), JSON.stringify({ runId: 'r1', status: 'failed' }));
    const r = await jobs.evalStart({ runDir: run, limit: 2 });
    assert.equal(r.reportPath, null);
    assert.equal(r.problem?.code, L.JobErrorCodes.RunNotUsable);
    assert.match(r.problem!.message, /no complete adapter/);
    assert.equal(sent.length, 0, 'the engine was not started');
    await jobs.dispose();
  });

  const completedRun = (name: string): string => makeCompletedRun(path.join(dir, 'runs-download'), name);

  it("evaluating while the base model downloads forwards its bytes for the run; cancelling stops it, the next goes on", async () => {
    const { jobs, sent } = manager({ FAKE_ENGINE_DOWNLOAD: '8', FAKE_ENGINE_STEP_MS: '40' });
    const run = completedRun('r-download');
    const model = path.join(run, 'model');
    const downloads = (): L.ModelDidProgressParams[] => sent.filter((s) => s.method === L.ModelDidProgress).map((s) => s.params as L.ModelDidProgressParams);

    const abort = new AbortController();
    const stopped = jobs.evalStart({ runDir: run, limit: 2 }, abort.signal);
    await waitFor(() => downloads().length >= 2, 5000, 'two download updates');
    abort.abort();
    const cancelled = await stopped;
    assert.deepEqual([cancelled.reportPath, cancelled.problem?.code], [null, L.JobErrorCodes.Cancelled]);
    const kept = downloads().at(-1)!.download!.bytesDone;
    assert.ok(kept < 8 * 2 ** 20, `stopped midway (${kept} bytes)`);

    const before = downloads().length;
    const done = await jobs.evalStart({ runDir: run, limit: 2 });
    assert.equal(done.problem, null, JSON.stringify(done.problem));
    assert.ok(done.reportPath && fs.existsSync(done.reportPath));
    const resumed = downloads().slice(before);
    assert.ok(resumed[0]!.download!.bytesDone > kept, 'the second evaluation goes on from the bytes that arrived');
    for (const p of downloads()) {
      assert.equal(p.runDir, run);
      assert.deepEqual([p.download!.model, p.download!.bytesTotal], [model, 8 * 2 ** 20]);
      assert.match(p.stage, /^Downloading .*model: [\d.]+ MiB of 8\.00 MiB \(\d+%\), [\d.]+ MiB\/s, ETA /);
    }
    assert.equal(resumed.at(-1)!.download!.bytesDone, 8 * 2 ** 20);
    await jobs.dispose();
  });

  it('summarizing while the base model downloads forwards its bytes; a cancelled summary is a Cancelled problem', async () => {
    const { jobs, sent } = manager({ FAKE_ENGINE_DOWNLOAD: '6', FAKE_ENGINE_STEP_MS: '40' });
    const run = completedRun('r-summarize');
    const params = { runDir: run, text: '#Person1#: Hi.\n#Person2#: Hello.', compareWithBase: false, maxNewTokens: 8 };
    const abort = new AbortController();
    const stopped = jobs.summarize(params, abort.signal);
    await waitFor(() => sent.some((s) => s.method === L.ModelDidProgress), 5000, 'a download update');
    abort.abort();
    assert.equal((await stopped).problem?.code, L.JobErrorCodes.Cancelled);
    const summary = await jobs.summarize(params);
    assert.equal(summary.problem, null, JSON.stringify(summary.problem));
    assert.equal(summary.adapter?.text, 'summary 0 of adapter');
    const last = sent.filter((s) => s.method === L.ModelDidProgress).at(-1)!.params as L.ModelDidProgressParams;
    assert.deepEqual([last.runDir, last.download?.bytesDone, last.download?.bytesTotal], [run, 6 * 2 ** 20, 6 * 2 ** 20]);
    await jobs.dispose();
  });

  it('no Python: the environment check says how to create one', async () => {
    const sent: Sent[] = [];
    const jobs = new JobManager({ sendNotification: (async (m: string, p: unknown) => void sent.push({ method: m, params: p })) as never }, async () => '', {
      repoRoot: dir,
      env: {},
    });
    const r = await jobs.envCheck({ probe: true });
    assert.equal(r.report, null);
    assert.equal(r.problem?.code, L.JobErrorCodes.NoPython);
    assert.match(r.problem!.fix!, /Set Up Engine Environment/);
    await jobs.dispose();
  });
});

describe('summarize inputs', () => {
  it('binds the selection to the prompt-only variable of the template and renders the prompt', () => {
    const bound = bindInput(path.join(repo, 'samples/dialogsum/summarize.prompt.yaml'), '#Person1#: Hi.\n#Person2#: Hello.');
    assert.ok(!('problem' in bound));
    assert.equal(bound.variable, 'dialogue');
    assert.deepEqual(bound.record, { dialogue: '#Person1#: Hi.\n#Person2#: Hello.' });
    assert.equal(bound.prompt, 'Instruct: Summarize the following conversation.\n#Person1#: Hi.\n#Person2#: Hello.\nOutput:\n');
  });

  it("a chat run's selection is one user turn in the run's record format, prompted through its chat template", () => {
    const loaded = loadConfig(path.join(repo, 'samples/chat/tiny.yaml'));
    assert.ok(loaded.ok);
    const bound = bindChatInput(loaded.config, 'A: Hi.\nB: Hello.');
    assert.ok(!('problem' in bound));
    assert.equal(bound.variable, null);
    assert.deepEqual(bound.record, { conversations: [{ from: 'human', value: 'A: Hi.\nB: Hello.' }] });
    assert.equal(bound.prompt, '<|im_start|>user\nA: Hi.\nB: Hello.<|im_end|>\n<|im_start|>assistant\n');
    const own = loadConfig(path.join(repo, 'samples/chat/smollm2.yaml'));
    assert.ok(own.ok);
    const smol = bindChatInput(own.config, 'x');
    assert.ok(!('problem' in smol));
    assert.deepEqual(smol.record, { messages: [{ role: 'user', content: 'x' }] });
    assert.match(smol.prompt, /^<\|im_start\|>system\nYou are a helpful AI assistant named SmolLM/);
    const none = bindChatInput({ ...loaded.config, chat_template: null }, 'x');
    assert.ok('problem' in none);
    assert.match(none.problem.message, /has no chat template/);
  });

  it('a run without an adapter is not usable, with a reason', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'config.yaml'), 'model: x\n');
    const r = runForGeneration(dir);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.problem.message, /no adapter yet/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('protocol/lsp.ts', () => {
  it('names requests qlora/noun/verb and notifications qlora/noun/didX, each once', () => {
    assert.equal(new Set(L.LspMethods).size, L.LspMethods.length);
    for (const m of L.LspMethods) assert.match(m, /^qlora\/[a-z]+\/(did[A-Z][A-Za-z]*|[a-z]+)$/, m);
    const notifications = L.LspMethods.filter((m) => m.split('/')[2]!.startsWith('did'));
    assert.deepEqual(notifications, [
      L.EngineDidChangeState,
      L.EngineDidLog,
      L.TrainDidStage,
      L.TrainDidProgress,
      L.TrainDidEval,
      L.TrainDidCheckpoint,
      L.TrainDidEnd,
      L.EvalDidProgress,
      L.GenerateDidStream,
      L.ModelDidProgress,
    ]);
  });
});
