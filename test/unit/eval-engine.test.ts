/**
 * `qlora-studio train` then `qlora-studio eval` against the real Python engine on the CPU: a freshly trained adapter
 * must beat the zero-shot base on ROUGE-1 on held-out DialogSum test records it never saw — on the tiny random model
 * (the training also scores ROUGE on validation records and keeps the best checkpoint), and on a real pretrained
 * one, SmolLM2-135M-Instruct (imported at install), whose validation loss must fall as well.
 * Skipped only when no engine Python can be found (QLORA_STUDIO_PYTHON or <repo>/.venv), saying why.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../server/src/cli/main';
import { findPython } from '../../server/src/engine-client/python';
import { EngineSupervisor } from '../../server/src/engine-client/supervise';
import type { EvalReport } from '../../server/src/eval/report';
import { summarize } from '../../server/src/jobs/generate';
import { readRun } from '../../server/src/runs/registry';
import { cliContext, repo, tempDir } from '../support/helpers';

const samples = path.join(repo, 'samples', 'dialogsum');

let python: string | null = null;
let skip: string | false = false;
try {
  python = findPython({ repoRoot: repo }).executable;
} catch (error) {
  skip = 'no engine Python environment (set QLORA_STUDIO_PYTHON or create <repo>/.venv)';
  process.stderr.write(`eval-engine tests SKIPPED — ${(error as Error).message}\n`);
}

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  QLORA_STUDIO_PYTHON: python ?? '',
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  TOKENIZERS_PARALLELISM: 'false',
});

let dir: string;
let engine: EngineSupervisor;

async function cli(args: string[]) {
  const run = cliContext(dir, engine, env());
  const code = await runCli(args, run.ctx);
  const events = run.stdout.lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, stdout: run.stdout.text, stderr: run.stderr.text, events };
}

describe('train, then eval the adapter against the zero-shot base (real engine)', () => {
  before(() => {
    dir = tempDir('qlora-eval-engine-');
    engine = new EngineSupervisor({ clientName: 'qlora-studio-test', python: () => python, env: env(), shutdownTimeoutMs: 20_000 });
  });
  after(async () => {
    await engine?.shutdown();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the adapter beats the base on ROUGE-1 on held-out test records; best checkpoint kept', { skip }, async (t) => {
    // The demo's config (samples/dialogsum/tiny.yaml) with fewer steps, ROUGE on 4 validation records every 20 steps
    // and the best checkpoint by ROUGE-1 kept; the data files stay the samples' (the test split is held out).
    const yaml = fs
      .readFileSync(path.join(samples, 'tiny.yaml'), 'utf8')
      .replace('model: ../models/tiny-phi', `model: ${path.join(repo, 'samples', 'models', 'tiny-phi')}`)
      .replace(/^data: .*$/m, `data: { train: ${samples}/train.jsonl, validation: ${samples}/validation.jsonl, test: ${samples}/test.jsonl }`)
      .replace('template: summarize.prompt.yaml', `template: ${samples}/summarize.prompt.yaml`)
      .replace(/^ {2}(eval_every|save_every|rouge_every|rouge_samples|best_metric): .*\n/gm, '')
      .replace(/^train:\n/m, 'train:\n  eval_every: 0\n  save_every: 0\n  rouge_every: 20\n  rouge_samples: 4\n  best_metric: rouge1\n')
      .replace(/^eval: .*\n/m, '')
      .concat('eval: { max_new_tokens: 24, batch_size: 4 }\n');
    const config = path.join(dir, 'finetune.yaml');
    fs.writeFileSync(config, yaml);

    const train = await cli(['train', config, '--max-steps', '40', '--json', '--runs-dir', path.join(dir, 'runs')]);
    assert.equal(train.code, 0, `${train.stderr}\n${train.stdout.slice(-2000)}`);
    const end = train.events.at(-1)!;
    const runDir = end.run_dir as string;
    const evals = train.events.filter((e) => e.event === 'eval');
    assert.deepEqual(evals.map((e) => e.step), [20, 40]);
    for (const e of evals) assert.deepEqual(Object.keys(e.rouge as object).sort(), ['rouge1', 'rouge2', 'rougeL', 'rougeLsum']);
    const best = readRun(runDir).record!.best!;
    assert.equal(best.metric, 'rouge1');
    assert.equal(best.value, Math.max(...evals.map((e) => (e.rouge as { rouge1: number }).rouge1)));
    assert.deepEqual(end.best, best);
    assert.ok(fs.existsSync(path.join(runDir, 'best-adapter', 'adapter_model.safetensors')));
    assert.ok(fs.existsSync(path.join(best.path, 'state.json')), 'the best checkpoint is kept');

    const r = await cli(['eval', '--adapter', path.join(runDir, 'adapter'), '--limit', '8', '--max-new-tokens', '24', '--json']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    const last = r.events.at(-1)!;
    assert.equal(last.event, 'end');
    const progress = r.events.filter((e) => e.event === 'progress').map((e) => `${e.phase} ${e.done}/${e.total}`);
    // eval.batch_size 4 (the run's config): two generate requests per phase, progress after each
    assert.deepEqual(progress, ['base 0/8', 'base 4/8', 'base 8/8', 'adapter 0/8', 'adapter 4/8', 'adapter 8/8', 'scoring 0/8', 'scoring 8/8']);
    const files = last.report as { json: string; md: string; html: string };
    assert.equal(path.dirname(files.json), path.join(runDir, 'eval'));
    const report = JSON.parse(fs.readFileSync(files.json, 'utf8')) as EvalReport;
    const rouge1 = report.metrics.find((m) => m.name === 'rouge1')!;
    assert.equal(report.count, 8);
    assert.deepEqual(report.referenceFields, ['summary1', 'summary2', 'summary3']);
    // Held-out: none of the scored test dialogues is in the training data.
    const trained = new Set(fs.readFileSync(path.join(samples, 'train.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { dialogue: string }).dialogue));
    assert.ok(report.examples.every((e) => !trained.has(e.input)));
    t.diagnostic(`ROUGE-1 on 8 held-out test records: base ${rouge1.base.toFixed(4)}, adapter ${rouge1.adapter.toFixed(4)} (best during training: step ${best.step}, ${best.value.toFixed(4)} on validation)`);
    assert.ok(rouge1.adapter > rouge1.base, `adapter ROUGE-1 ${rouge1.adapter} must beat the base's ${rouge1.base}\n${fs.readFileSync(files.md, 'utf8').slice(0, 3000)}`);
    assert.ok(fs.readFileSync(files.html, 'utf8').includes('prefers-color-scheme'));
    // Base and adapter saw the same prompts: same prompt token counts per example.
    for (const e of report.examples) assert.equal(e.base.promptTokens, e.adapter.promptTokens);
  });

  it('a real pretrained model (SmolLM2-135M-Instruct): validation loss falls and the adapter beats the base on ROUGE-1', { skip }, async (t) => {
    const model = path.join(repo, 'samples', 'models', 'smollm2-135m-instruct');
    assert.ok(fs.existsSync(path.join(model, 'model.safetensors')), `${model} is missing: npm install imports it (npm run setup:engine)`);
    // The demo's config, shortened: 16 steps at twice the learning rate, validation loss every 8.
    const yaml = fs
      .readFileSync(path.join(samples, 'smollm2.yaml'), 'utf8')
      .replace('model: ../models/smollm2-135m-instruct', `model: ${model}`)
      .replace(/^data: .*$/m, `data: { train: ${samples}/train.jsonl, validation: ${samples}/validation.jsonl, test: ${samples}/test.jsonl }`)
      .replace('template: smollm2.prompt.yaml', `template: ${samples}/smollm2.prompt.yaml`)
      .replace(/^ {2}eval_every: .*$/m, '  eval_every: 8')
      .replace(/^ {2}learning_rate: .*$/m, '  learning_rate: 2.0e-3')
      .replace(/^ {2}save_every: .*$/m, '  save_every: 0')
      .replace(/^ {2}warmup_steps: .*$/m, '  warmup_steps: 2');
    const config = path.join(dir, 'smollm2.yaml');
    fs.writeFileSync(config, yaml);
    const train = await cli(['train', config, '--max-steps', '16', '--json', '--runs-dir', path.join(dir, 'runs-smollm2')]);
    assert.equal(train.code, 0, `${train.stderr}\n${train.stdout.slice(-2000)}`);
    const losses = train.events.filter((e) => e.event === 'eval').map((e) => [e.step as number, e.evalLoss as number]);
    assert.deepEqual(losses.map(([step]) => step), [8, 16]);
    t.diagnostic(`validation loss by step: ${losses.map(([s, l]) => `${s}: ${(l as number).toFixed(4)}`).join(', ')}`);
    assert.ok(losses[1]![1]! < losses[0]![1]!, `validation loss must fall: ${JSON.stringify(losses)}`);

    const runDir = train.events.at(-1)!.run_dir as string;
    const r = await cli(['eval', '--adapter', path.join(runDir, 'adapter'), '--limit', '12', '--json']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    const report = JSON.parse(fs.readFileSync((r.events.at(-1)!.report as { json: string }).json, 'utf8')) as EvalReport;
    const rouge1 = report.metrics.find((m) => m.name === 'rouge1')!;
    t.diagnostic(`ROUGE-1 on 12 held-out test records: base ${rouge1.base.toFixed(4)}, adapter ${rouge1.adapter.toFixed(4)}`);
    assert.ok(rouge1.adapter > rouge1.base, `adapter ROUGE-1 ${rouge1.adapter} must beat the base's ${rouge1.base}`);
    // Real summaries, not a repeated token: every adapter summary has several distinct words.
    for (const e of report.examples) assert.ok(new Set(e.adapter.text.split(/\s+/)).size >= 4, `degenerate summary: ${JSON.stringify(e.adapter.text)}`);

    // Summarize Selection, compared with the base: one mixed batch, streamed as it is generated; the last text of
    // each side is the final summary, and the first text arrives well before the end.
    const updates: { base: boolean; text: string; done: boolean; at: number }[] = [];
    const started = performance.now();
    const dialogue = String((JSON.parse(fs.readFileSync(path.join(samples, 'test.jsonl'), 'utf8').split('\n')[0]!) as Record<string, unknown>).dialogue);
    const summary = await summarize(
      engine,
      { runDir, text: dialogue, compareWithBase: true, maxNewTokens: 40, streamId: 'stream-1' },
      (u) => updates.push({ base: u.base, text: u.text, done: u.done, at: performance.now() - started }),
    );
    assert.equal(summary.problem, null, JSON.stringify(summary.problem));
    const ended = performance.now() - started;
    for (const [base, final] of [[false, summary.adapter!], [true, summary.base!]] as const) {
      const side = updates.filter((u) => u.base === base);
      assert.ok(side.length >= 3, `${base ? 'base' : 'adapter'}: ${side.length} updates`);
      assert.deepEqual([side.at(-1)!.text, side.at(-1)!.done], [final.text, true]);
      assert.equal(side.filter((u) => u.done).length, 1);
    }
    const first = updates.find((u) => u.text)!.at;
    t.diagnostic(`summarize with comparison: first text after ${first.toFixed(0)} ms, done after ${ended.toFixed(0)} ms`);
    assert.ok(first < ended / 2, `the first text (${first} ms) must come long before the end (${ended} ms)`);
  });
});
