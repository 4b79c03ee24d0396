/**
 * The evaluation core (server/src/eval/evaluate.ts), its report rendering and the `eval` command's input errors,
 * with a scripted generate function instead of the engine (eval-engine.test.ts runs the real engine).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ResolvedConfig } from '../../protocol/config';
import { ErrorCodes, type GenerateParams, type GenerateResult } from '../../protocol/engine';
import { runCli } from '../../server/src/cli/main';
import { loadConfig } from '../../server/src/config/load';
import { EngineError } from '../../server/src/engine-client/rpc';
import { bootstrapAggregate, meanScores } from '../../server/src/eval/aggregate';
import {
  defaultReportDir,
  EvalCancelledError,
  evaluate,
  prepareEvaluation,
  runEvaluation,
  type EvalProgress,
} from '../../server/src/eval/evaluate';
import { EvalInputError } from '../../server/src/eval/records';
import { formatTable, mdText, renderMarkdown, writeReport, type EvalReport } from '../../server/src/eval/report';
import { escapeHtml, renderHtml } from '../../server/src/eval/report.html';
import { RougeScorer } from '../../server/src/eval/rouge';
import { parseReport } from '../../extension/src/runs/read';
import { TextEvalView } from '../../server/src/cli/eval-view';
import { Captured, cliContext, rejection, repo, tempDir } from '../support/helpers';

const samples = path.join(repo, 'samples', 'dialogsum');
const tinyModel = path.join(repo, 'samples', 'models', 'tiny-phi');
let dir: string;
let runDir: string;
let adapter: string;

/** A config file in `folder` (train/validation/test + template copied beside it unless given), loaded. */
function setup(folder: string, yaml: (base: string) => string = (y) => y, files: Record<string, string> = {}): { file: string; config: ResolvedConfig } {
  const at = path.join(dir, folder);
  fs.mkdirSync(at, { recursive: true });
  for (const f of ['train.jsonl', 'validation.jsonl', 'test.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(samples, f), path.join(at, f));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(at, name), text);
  const base = `model: ${tinyModel}\nquantization: none\ndata: { train: train.jsonl, validation: validation.jsonl, test: test.jsonl }\ntemplate: summarize.prompt.yaml\nmax_length: 512\n`;
  const file = path.join(at, 'finetune.yaml');
  fs.writeFileSync(file, yaml(base));
  const loaded = loadConfig(file);
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
  return { file, config: loaded.config };
}

/** A generate that answers from a script: the base says `base(fields)`, the adapter `adapter(fields)`. */
function scripted(base: (r: Record<string, unknown>) => string, tuned: (r: Record<string, unknown>) => string) {
  const calls: GenerateParams[] = [];
  const generate = async (p: GenerateParams): Promise<GenerateResult> => {
    calls.push(p);
    const text = p.adapter === null ? base : tuned;
    // as the engine: the first request loads the model (2 s), the first with the adapter loads it (0.5 s)
    const first = calls.filter((c) => c.adapter === p.adapter).length === 1;
    const loadSeconds = first ? (p.adapter === null ? 2 : 0.5) : 0;
    return { completions: p.records.map((r) => ({ text: text(r), promptTokens: 10, newTokens: 5 })), seconds: 0.01, loadSeconds };
  };
  return { calls, generate };
}

const lines = (file: string): Record<string, unknown>[] =>
  fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

before(() => {
  dir = tempDir('qlora-eval-');
  runDir = path.join(dir, 'runs', 'run-1');
  adapter = path.join(runDir, 'adapter');
  fs.mkdirSync(adapter, { recursive: true });
  fs.writeFileSync(path.join(adapter, 'adapter_config.json'), '{}');
  fs.writeFileSync(path.join(adapter, 'adapter_model.safetensors'), '');
  fs.writeFileSync(path.join(runDir, 'run.json'), '{"runId":"run-1","status":"completed"}');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('eval: prepare', () => {
  it('reads the test split: every record, the dialogue as input, summary1..3 as references', async () => {
    const { file, config } = setup('ok');
    const p = await prepareEvaluation({ config, configFile: file, adapter: runDir });
    const test = lines(path.join(samples, 'test.jsonl'));
    assert.equal(p.adapter, adapter, 'a run folder means its adapter/');
    assert.equal(p.runDir, runDir);
    assert.equal(p.outDir, path.join(runDir, 'eval'));
    assert.equal(p.records.length, test.length);
    assert.deepEqual(p.referenceFields, ['summary1', 'summary2', 'summary3']);
    assert.deepEqual(p.references[0], [test[0]!.summary1, test[0]!.summary2, test[0]!.summary3]);
    assert.equal(p.inputs[3], test[3]!.dialogue);
    assert.deepEqual([p.maxNewTokens, p.batchSize, p.skipped.length], [100, 8, 0]);
    const limited = await prepareEvaluation({ config, configFile: file, adapter, limit: 5, maxNewTokens: 20, batchSize: 2 });
    assert.deepEqual(limited.records.map((r) => r.line), [1, 2, 3, 4, 5]);
    assert.equal(defaultReportDir(path.join(runDir, 'best-adapter'), runDir), path.join(runDir, 'eval-best-adapter'));
  });

  it('eval.references names the fields; the validation split uses `summary`', async () => {
    const { file, config } = setup('refs', (y) => `${y}eval: { references: [summary2] }\n`);
    const p = await prepareEvaluation({ config, configFile: file, adapter, limit: 2 });
    assert.deepEqual(p.referenceFields, ['summary2']);
    assert.deepEqual(p.references.map((r) => r.length), [1, 1]);
    const v = await prepareEvaluation({ config: setup('val').config, adapter, split: 'validation', limit: 3 });
    assert.deepEqual(v.referenceFields, ['summary']);
  });

  it('skips prompts over max_length, listed with their token counts', async () => {
    const long = JSON.stringify({ dialogue: 'word '.repeat(600), summary1: 'a' });
    const short = JSON.stringify({ dialogue: 'A: hi.\nB: hello.', summary1: 'They greet.' });
    const { file, config } = setup('long', (y) => y, { 'test.jsonl': `${short}\n${long}\n${short}\n` });
    const p = await prepareEvaluation({ config, configFile: file, adapter });
    assert.deepEqual(p.records.map((r) => r.line), [1, 3]);
    assert.equal(p.skipped.length, 1);
    assert.equal(p.skipped[0]!.line, 2);
    assert.ok(p.skipped[0]!.promptTokens > 512, String(p.skipped[0]!.promptTokens));
  });

  const cases: [string, () => Promise<unknown>, Partial<EvalInputError>][] = [
    ['missing adapter folder', async () => prepareEvaluation({ config: setup('a1').config, adapter: path.join(dir, 'nope') }), { field: '--adapter', file: path.join(dir, 'nope') }],
    [
      'a run folder without adapter/',
      async () => {
        const r = path.join(dir, 'runs', 'failed');
        fs.mkdirSync(r, { recursive: true });
        fs.writeFileSync(path.join(r, 'run.json'), '{}');
        return prepareEvaluation({ config: setup('a2').config, adapter: r });
      },
      { field: '--adapter' },
    ],
    ['a config without data.test', async () => prepareEvaluation({ config: setup('nt', (y) => y.replace(', test: test.jsonl', '')).config, adapter }), { field: 'data.test', file: null }],
    ['a split without records', async () => prepareEvaluation({ config: setup('empty', (y) => y, { 'test.jsonl': '\n\n' }).config, adapter }), { field: 'data.test', line: 0 }],
    ['invalid JSON', async () => prepareEvaluation({ config: setup('json', (y) => y, { 'test.jsonl': '{"dialogue":"a","summary1":"b"}\n{"dialogue": \n' }).config, adapter }), { line: 2 }],
    ['a record lacking the prompt field', async () => prepareEvaluation({ config: setup('field', (y) => y, { 'test.jsonl': '{"dialogue":"a","summary1":"b"}\n\n{"text":"a","summary1":"b"}\n' }).config, adapter }), { line: 3, field: 'dialogue' }],
    ['a record without references', async () => prepareEvaluation({ config: setup('noref', (y) => y, { 'test.jsonl': '{"dialogue":"a","summary1":"b"}\n{"dialogue":"a","topic":"b"}\n' }).config, adapter }), { line: 2, field: 'summary1' }],
    ['a named reference missing', async () => prepareEvaluation({ config: setup('named', (y) => `${y}eval: { references: [summary1, summary4] }\n`).config, adapter }), { line: 1, field: 'summary4' }],
    ['a bad --limit', async () => prepareEvaluation({ config: setup('lim').config, adapter, limit: -1 }), { field: '--limit' }],
  ];
  for (const [what, run, expected] of cases) {
    it(`${what} is an EvalInputError naming the place`, async () => {
      const error = await rejection(run());
      assert.ok(error instanceof EvalInputError, String(error));
      for (const [key, value] of Object.entries(expected)) assert.equal((error as unknown as Record<string, unknown>)[key], value, `${key}: ${error.message}`);
      if (expected.line) assert.ok(error.file?.endsWith('test.jsonl'), String(error.file));
    });
  }
});

describe('eval: run', () => {
  it('base then adapter in chunks on the same prompts and settings; ROUGE with every reference', async () => {
    const { file, config } = setup('run');
    const prepared = await prepareEvaluation({ config, configFile: file, adapter, limit: 7, maxNewTokens: 12, batchSize: 3 });
    const { calls, generate } = scripted(
      () => 'blue whales sing',
      (r) => String(r.summary2),
    );
    const progress: EvalProgress[] = [];
    const report = await runEvaluation(prepared, generate, (p) => progress.push(p));
    assert.deepEqual(calls.map((c) => [c.adapter, c.records.length]), [[null, 3], [null, 3], [null, 1], [adapter, 3], [adapter, 3], [adapter, 1]]);
    for (const c of calls) assert.deepEqual([c.maxNewTokens, c.batchSize, c.temperature, c.topP, c.seed], [12, 3, 0, 1, 0]);
    assert.deepEqual(calls.slice(0, 3).flatMap((c) => c.records), calls.slice(3).flatMap((c) => c.records));
    assert.deepEqual(
      progress.map((p) => `${p.phase} ${p.done}/${p.total}`),
      ['base 0/7', 'base 3/7', 'base 6/7', 'base 7/7', 'adapter 0/7', 'adapter 3/7', 'adapter 6/7', 'adapter 7/7', 'scoring 0/7', 'scoring 7/7'],
    );
    // The adapter wrote one of the references word for word: F 1 for every type (best reference per type).
    const byName = Object.fromEntries(report.metrics.map((m) => [m.name, m]));
    for (const name of ['rouge1', 'rouge2', 'rougeL', 'rougeLsum']) {
      assert.equal(byName[name]!.adapter, 1, name);
      assert.equal(byName[name]!.improvement, byName[name]!.adapter - byName[name]!.base);
    }
    // The base's numbers are rouge.ts's, aggregated by aggregate.ts, against all three references.
    const scorer = new RougeScorer({ useStemmer: true });
    const per = prepared.references.map((refs) => scorer.scoreMulti(refs, 'blue whales sing'));
    const mean = meanScores(per);
    const boot = bootstrapAggregate(per, { seed: 0, nSamples: 1000 });
    assert.equal(byName.rouge1!.base, mean.rouge1.fmeasure);
    assert.deepEqual(byName.rougeL!.baseInterval, { low: boot.rougeL.low.fmeasure, high: boot.rougeL.high.fmeasure });
    assert.equal(report.count, 7);
    assert.equal(report.examples[2]!.line, 3);
    assert.equal(report.examples[2]!.adapter.text, prepared.references[2]![1]);
    assert.equal(report.examples[2]!.adapter.rouge.rouge1, 1);
    assert.deepEqual(report.referenceFields, ['summary1', 'summary2', 'summary3']);
    // the engine's own seconds per request (0.01 here), summed per phase: the time without loading the model
    assert.ok(Math.abs(report.generating!.base - 0.03) < 1e-9 && Math.abs(report.generating!.adapter - 0.03) < 1e-9);
    assert.deepEqual(report.loading, { base: 2, adapter: 0.5 }); // and the loading, apart
    assert.match(renderMarkdown(report), /0\.1 s generating \(0\.0 s base \+ 0\.0 s adapter\) and 2\.5 s loading the model and the adapter/);
  });

  it('generates longest prompts first, each record once, and reports in file order', async () => {
    const { file, config } = setup('order');
    const prepared = await prepareEvaluation({ config, configFile: file, adapter, limit: 9, batchSize: 2 });
    const { calls, generate } = scripted(() => 'base', (r) => `echo ${String(r.dialogue).slice(0, 40)}`);
    const report = await runEvaluation(prepared, generate);
    const dialogues = prepared.records.map((r) => String(r.fields.dialogue));
    for (const phase of [calls.slice(0, 5), calls.slice(5)]) {
      const sent = phase.flatMap((c) => c.records.map((r) => String(r.dialogue)));
      assert.deepEqual([...sent].sort(), [...dialogues].sort(), 'every record once per phase');
      assert.deepEqual(sent, prepared.order.map((i) => dialogues[i]!), 'in the prepared order');
      assert.equal(sent[0]!.length, Math.max(...dialogues.map((d) => d.length)), 'longest (in tokens) first');
      assert.notDeepEqual(sent, dialogues, 'the sample file is not already in length order');
    }
    assert.deepEqual(report.examples.map((e) => e.line), prepared.records.map((r) => r.line));
    report.examples.forEach((e, i) => assert.equal(e.adapter.text, `echo ${dialogues[i]!.slice(0, 40)}`));
  });

  it('stops between chunks when cancelled', async () => {
    const { config } = setup('cancel');
    const abort = new AbortController();
    const { calls, generate } = scripted(() => 'x', () => 'y');
    const error = await rejection(evaluate(async (p) => (abort.abort(), generate(p)), { config, adapter, limit: 6, batchSize: 2 }, undefined, abort.signal));
    assert.ok(error instanceof EvalCancelledError);
    assert.equal(calls.length, 1);
  });

  it("points an engine BadDataset about records[i] at the record's line", async () => {
    const { config } = setup('engine-error');
    const generate = async (p: GenerateParams): Promise<GenerateResult> => {
      if (p.records.length === 2 && p.records[0] === p.records[0]) {
        throw new EngineError(ErrorCodes.BadDataset, 'records[1]: the prompt is 900 tokens, longer than max_length=512', { code: ErrorCodes.BadDataset, line: 2, field: 'max_length' });
      }
      return { completions: [], seconds: 0 };
    };
    const prepared = await prepareEvaluation({ config, adapter, limit: 6, batchSize: 2 });
    const error = await rejection(runEvaluation(prepared, generate));
    assert.ok(error instanceof EvalInputError, String(error));
    // records[1] of the first request is the second-longest prompt (schedule.ts), wherever it is in the file
    const second = prepared.records[prepared.order[1]!]!.line;
    assert.deepEqual([error.line, error.field, path.basename(error.file!)], [second, 'max_length', 'test.jsonl']);
    assert.match(error.message, /^the prompt is 900 tokens/);
  });
});

describe('eval: report', () => {
  let report: EvalReport;
  before(async () => {
    const nasty = 'A: <script>alert("x")</script> & | `code` *bold* [link](http://example.com)\n# not a heading\n1. not a list';
    const { file, config } = setup('report', (y) => y, { 'test.jsonl': `${JSON.stringify({ dialogue: nasty, summary1: 'They <b>talk</b> | about it.' })}\n${JSON.stringify({ dialogue: 'B: ok', summary1: 'ok' })}\n` });
    const prepared = await prepareEvaluation({ config, configFile: file, adapter });
    report = await runEvaluation(prepared, scripted(() => '</pre><img src=x onerror=alert(1)>', () => 'They talk | about `it`.').generate);
  });

  it('prints the table with intervals and the improvement', () => {
    const text = formatTable(report);
    assert.match(text, /^metric +base \(zero-shot\) +adapter +improvement$/m);
    assert.match(text, /^rouge1 +0\.0000 \[0\.0000–0\.0000\] +\d\.\d{4} \[\d\.\d{4}–\d\.\d{4}\] +\+0\.\d{4}$/m);
    assert.match(text, /2 test records of test\.jsonl; references: summary1; greedy, max 100 new tokens/);
  });

  it('HTML: self-contained, light and dark, every value escaped', () => {
    const html = renderHtml(report);
    const tags = html.match(/<[^>]*>/g) ?? [];
    assert.ok(!tags.some((t) => /^<\/?(script|img|b)\b/i.test(t)), 'no markup from the data');
    assert.ok(html.includes(escapeHtml('<script>alert("x")</script>')));
    assert.ok(html.includes(escapeHtml('</pre><img src=x onerror=alert(1)>')));
    assert.ok(!tags.some((t) => /\b(src|href|onerror)\s*=/i.test(t)), 'no external resources, no handlers');
    assert.match(html, /Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"/);
    assert.match(html, /@media \(prefers-color-scheme: dark\)/);
    assert.equal((html.match(/<section class="example"/g) ?? []).length, 2);
  });

  it('Markdown: the table, then each example side by side, data escaped', () => {
    const md = renderMarkdown(report);
    assert.match(md, /^\| rouge1 \| 0\.0000 \| \d\.\d{4} \| \+\d\.\d{4} \| /m);
    assert.match(md, /^\| base \(zero-shot\) \| adapter \|$/m);
    assert.ok(md.includes('| \\</pre\\>\\<img src=x onerror=alert(1)\\> | They talk \\| about \\`it\\`. |'), md);
    assert.ok(md.includes('1. They \\<b\\>talk\\</b\\> \\| about it.'));
    assert.equal(mdText('# title\n- item'), '\\# title<br>- item');
    assert.equal(mdText('1. one'), '1\\. one');
    assert.match(md, /```text\nA: <script>/, 'inputs are fenced, verbatim');
  });

  it('writes report.json/md/html atomically; the dashboard reads report.json', () => {
    const out = path.join(dir, 'out');
    const files = writeReport(out, report);
    assert.deepEqual(fs.readdirSync(out).sort(), ['report.html', 'report.json', 'report.md']);
    const json = JSON.parse(fs.readFileSync(files.json, 'utf8')) as EvalReport;
    assert.equal(json.metrics[0]!.name, 'rouge1');
    const view = parseReport(fs.readFileSync(files.json, 'utf8'));
    assert.ok(view);
    assert.equal(view.examples, 2);
    assert.deepEqual(view.metrics.map((m) => m.name), ['rouge1', 'rouge2', 'rougeL', 'rougeLsum']);
    assert.equal(view.samples[1]!.adapter, 'They talk | about `it`.');
    assert.equal(view.samples[1]!.reference, 'ok');
  });
});

describe('cli eval: progress', () => {
  it('redraws one bar per phase in place on a TTY, within the terminal width', async () => {
    const out = new Captured(true, 60);
    const view = new TextEvalView(out, dir);
    for (const done of [0, 8, 16, 20]) view.progress({ phase: 'base', done, total: 20 });
    view.note('a note above the bar');
    view.progress({ phase: 'adapter', done: 8, total: 20 });
    const frames = out.text.split('\r\x1b[2K').filter(Boolean);
    assert.match(frames[0]!, /^base \(zero-shot\) +░+ +0% +0\/20 records$/);
    assert.match(frames[3]!, /^base \(zero-shot\) +█+ 100% +20\/20 records\n/);
    assert.match(out.text, /a note above the bar\n/);
    for (const frame of frames) for (const row of frame.split('\n')) assert.ok(row.length <= 59, `${row.length}: ${row}`);
  });

  it('prints one plain line per update off a TTY', () => {
    const out = new Captured(false);
    const view = new TextEvalView(out, dir);
    for (const done of [0, 8, 8, 16]) view.progress({ phase: 'adapter', done, total: 16 });
    assert.deepEqual(out.lines(), ['adapter           0/16 records', 'adapter           8/16 records', 'adapter          16/16 records']);
  });
});

describe('cli eval: bad input exits 2 before the engine starts', () => {
  async function cli(args: string[]) {
    const run = cliContext(dir);
    const code = await runCli(args, run.ctx);
    return { code, stdout: run.stdout.text, stderr: run.stderr.text };
  }

  it('without --adapter: usage', async () => {
    const r = await cli(['eval', setup('cli0').file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing --adapter/);
    assert.match(r.stderr, /Usage: qlora-studio eval/);
  });

  it('a missing adapter folder names it', async () => {
    const r = await cli(['eval', setup('cli1').file, '--adapter', 'runs/none/adapter']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /runs[/\\]none[/\\]adapter --adapter: adapter folder not found: /);
  });

  it('a split the config lacks names the config field; --json says it too', async () => {
    const { file } = setup('cli2', (y) => y.replace(', validation: validation.jsonl', ''));
    const r = await cli(['eval', file, '--adapter', adapter, '--split', 'validation', '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /finetune\.yaml data\.validation: the config has no data\.validation file/);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').at(-1)!).event, 'error');
  });

  it('a record lacking the prompt field: file:line field', async () => {
    const { file } = setup('cli3', (y) => y, { 'test.jsonl': '{"dialogue":"a","summary1":"b"}\n{"dialog":"a","summary1":"b"}\n' });
    const r = await cli(['eval', file, '--adapter', adapter]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /test\.jsonl:2 dialogue: field 'dialogue' used by the prompt of summarize\.prompt\.yaml is missing/);
  });

  it('a bad --split or --limit is a usage error', async () => {
    assert.equal((await cli(['eval', setup('cli4').file, '--adapter', adapter, '--split', 'dev'])).code, 2);
    const r = await cli(['eval', setup('cli5').file, '--adapter', adapter, '--limit', 'ten']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--limit must be a whole number/);
  });
});
