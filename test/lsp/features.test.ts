/** Quick fixes, hover, CodeLens, completion and cross-file re-lint, through the real server over streams. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { TrainPlanResult } from '../../protocol/engine';
import * as L from '../../protocol/lsp';
import { RemoteCodeLensTitle, RestrictedLensTitle } from '../../server/src/lint/service';
import { loadTokenizer } from '../../server/src/tokenizer/load';
import { launchFakeEngine } from '../support/helpers';
import { fixtures, LspClient, repo, testEnv, text } from './harness';

const clients: LspClient[] = [];
after(() => clients.forEach((c) => c.dispose()));

async function start(folder: string, options: Parameters<typeof LspClient.start>[1] = {}): Promise<LspClient> {
  const client = await LspClient.start(path.join(fixtures, folder), options);
  clients.push(client);
  return client;
}

describe('quick fixes', () => {
  test('remove a duplicate line, and the duplicate is gone after applying it', async () => {
    const client = await start('duplicate');
    const uri = await client.open(path.join(fixtures, 'duplicate', 'train.jsonl'));
    const diagnostics = await client.diagnostics(uri);
    const dup = diagnostics.find((d) => d.code === 'jsonl/duplicate' && d.range.start.line === 2)!;
    assert.deepEqual(dup.relatedInformation?.[0]?.location.range.start, { line: 0, character: 0 });
    const actions = await client.codeActions(uri, dup.range, [dup]);
    assert.equal(actions.length, 1);
    assert.equal(actions[0]!.title, 'Remove duplicate line 3');
    const edits = actions[0]!.edit!.changes![uri]!;
    assert.deepEqual(edits, [{ range: { start: { line: 2, character: 0 }, end: { line: 3, character: 0 } }, newText: '' }]);
    const version = await client.change(uri, edits.map((e) => ({ range: e.range, text: e.newText })));
    const after = await client.diagnostics(uri, { version });
    assert.deepEqual(after.map((d) => [d.code, d.range.start.line]), [['jsonl/duplicate', 2]], 'line 4 (now 3) still duplicates line 2');
    assert.match(text(after[0]!), /as line 2$/);
  });

  test('trim a field', async () => {
    const client = await start('whitespace');
    const uri = await client.open(path.join(fixtures, 'whitespace', 'data.jsonl'));
    const d = (await client.diagnostics(uri)).find((x) => x.range.start.line === 0)!;
    const actions = await client.codeActions(uri, d.range, [d]);
    assert.equal(actions[0]!.title, 'Trim field "summary"');
    assert.deepEqual(actions[0]!.edit!.changes![uri], [{ range: { start: { line: 0, character: 34 }, end: { line: 0, character: 47 } }, newText: '"Greeting."' }]);
    assert.deepEqual(actions[0]!.diagnostics?.[0]?.code, 'jsonl/whitespace');
  });

  test('normalize line endings', async () => {
    const client = await start('line-endings');
    const uri = await client.open(path.join(fixtures, 'line-endings', 'data.jsonl'));
    const d = (await client.diagnostics(uri))[0]!;
    const actions = await client.codeActions(uri, d.range, [d]);
    assert.equal(actions[0]!.title, 'Normalize line endings to LF');
    const edits = actions[0]!.edit!.changes![uri]!;
    assert.deepEqual(edits, [{ range: { start: { line: 1, character: 40 }, end: { line: 2, character: 0 } }, newText: '\n' }]);
    const version = await client.change(uri, edits.map((e) => ({ range: e.range, text: e.newText })));
    const after = await client.diagnostics(uri, { version });
    assert.deepEqual(after.map((d) => [d.code, d.range.start.line, d.range.start.character]), [['jsonl/mixed-line-endings', 0, 0]]);
    assert.match(text(after[0]!), /^the file on disk mixes CRLF and LF .* save the file/);
    assert.deepEqual(await client.codeActions(uri, after[0]!.range, after), [], 'only saving fixes the bytes on disk');
  });

  test('no quick fix where the fix is not unambiguous', async () => {
    const client = await start('template-fields');
    const uri = await client.open(path.join(fixtures, 'template-fields', 'train.jsonl'));
    const d = (await client.diagnostics(uri)).find((x) => x.code === 'jsonl/missing-field')!;
    assert.deepEqual(await client.codeActions(uri, d.range, [d]), []);
  });
});

describe('hover', () => {
  test('a record: token counts and the text the model sees, loss tokens marked', async () => {
    const client = await start('duplicate');
    const file = path.join(fixtures, 'duplicate', 'train.jsonl');
    const uri = await client.open(file);
    await client.diagnostics(uri);
    const hover = await client.hover(uri, 0, 5);
    const text = (hover!.contents as { value: string }).value;
    const tok = await loadTokenizer(path.join(repo, 'samples', 'models', 'phi-2'), repo);
    assert.ok(tok.ok);
    const prompt = 'Instruct: Summarize the following conversation.\nA: Where is the station?\nB: Turn left.\nOutput:\n';
    const response = 'Directions to the station.';
    const p = tok.tokenizer.encode(prompt).length;
    const r = tok.tokenizer.encode(response).length + 1;
    assert.match(text, new RegExp(`^\\*\\*Record 1\\*\\*: ${p + r} tokens of max_length 1,024`));
    assert.ok(text.includes(`prompt ${p} + response ${r} (incl. EOS) · ${r} tokens count toward the loss (\`loss_on: response\`)`), text);
    assert.ok(text.includes(`\`\`\`text\n${prompt}⟦${response}<|endoftext|>⟧\n\`\`\``), text);
  });

  test('a test-split record without the response fields: the prompt only', async () => {
    const client = await start('test-split');
    const uri = await client.open(path.join(fixtures, 'test-split', 'test.jsonl'));
    await client.diagnostics(uri);
    const text = ((await client.hover(uri, 0, 3))!.contents as { value: string }).value;
    assert.match(text, /^\*\*Record 1\*\*: prompt \d+ tokens of max_length 48/);
    assert.ok(text.includes('```text\nInstruct: Summarize the following conversation.\nA: Hi there.\nOutput:\n\n```'), text);
    assert.ok(!text.includes('⟦'));
  });

  test('a record in a dataset no config names', async () => {
    const client = await start('whitespace');
    const uri = await client.open(path.join(fixtures, 'whitespace', 'data.jsonl'));
    await client.diagnostics(uri);
    const hover = await client.hover(uri, 1, 3);
    assert.match((hover!.contents as { value: string }).value, /no config names this file/);
  });

  test('a config key: the JSON Schema description', async () => {
    const client = await start('config-range');
    const uri = await client.open(path.join(fixtures, 'config-range', 'finetune.yaml'));
    await client.diagnostics(uri);
    const hover = await client.hover(uri, 7, 5);
    const text = (hover!.contents as { value: string }).value;
    assert.match(text, /^\*\*train\.learning_rate\*\* \(number\)/);
    assert.match(text, /Peak learning rate\./);
    assert.match(text, /default: `0\.0002`/);
  });
});

describe('CodeLens', () => {
  test('dataset statistics at the top', async () => {
    const client = await start('duplicate');
    const uri = await client.open(path.join(fixtures, 'duplicate', 'train.jsonl'));
    await client.diagnostics(uri);
    const lenses = (await client.codeLens(uri))!;
    assert.equal(lenses.length, 1);
    assert.deepEqual(lenses[0]!.range.start, { line: 0, character: 0 });
    const m = /^4 records · median (\d+) tokens · p95 (\d+) · 0 over max_length 1,024 · 2 duplicates$/.exec(lenses[0]!.command!.title);
    assert.ok(m, lenses[0]!.command!.title);
    assert.ok(Number(m[1]) <= Number(m[2]));
  });

  test('over-limit count', async () => {
    const client = await start('too-long');
    const uri = await client.open(path.join(fixtures, 'too-long', 'train.jsonl'));
    await client.diagnostics(uri);
    assert.match((await client.codeLens(uri))![0]!.command!.title, /^2 records · median \d+ tokens · p95 \d+ · 1 over max_length 64 · 0 duplicates$/);
  });

  test('a dataset opened alone', async () => {
    const client = await start('invalid-json');
    const uri = await client.open(path.join(fixtures, 'invalid-json', 'data.jsonl'));
    await client.diagnostics(uri);
    assert.equal((await client.codeLens(uri))![0]!.command!.title, '1 record · no config names this file (token statistics need one) · 0 duplicates');
  });

  test('config memory estimate: the engine unavailable says why', async () => {
    const client = await start('config-range', { env: testEnv({ QLORA_STUDIO_PYTHON: '/nonexistent/python3' }) });
    const uri = await client.open(path.join(fixtures, 'config-range', 'finetune.yaml'));
    await client.diagnostics(uri);
    assert.equal((await client.codeLens(uri))![0]!.command!.title, 'Memory estimate: computing…');
    await client.waitFor(() => client.lensRefreshes > 0);
    assert.match((await client.codeLens(uri))![0]!.command!.title, /^Memory estimate unavailable: QLORA_STUDIO_PYTHON=\/nonexistent\/python3 does not exist/);
  });

  test('config memory estimate from the engine, computed lazily', async () => {
    const requests: unknown[] = [];
    const plan = async (config: unknown): Promise<TrainPlanResult> => {
      requests.push(config);
      return {
        baseParameters: 2.78e9,
        loraParameters: 7.9e6,
        peakBytes: 3.5 * 2 ** 30,
        peakBytesWithCheckpointing: 3.5 * 2 ** 30,
        peakBytesWithoutCheckpointing: 6 * 2 ** 30,
        terms: [
          { name: 'weights', bytes: 1.6 * 2 ** 30, detail: 'nf4' },
          { name: 'activations', bytes: 1.2 * 2 ** 30, detail: '' },
        ],
        device: { index: 0, name: 'NVIDIA H100', totalMemory: 80 * 2 ** 30, freeMemory: 79 * 2 ** 30, capability: [9, 0], bf16: true },
        fits: true,
        picks: { microBatchSize: 1, gradientCheckpointing: true, tokensPerPass: 2048, compile: false, cudaGraphs: false, denseBase: false, strategy: 'ddp', reason: 'as configured' },
        devices: 1,
      };
    };
    const client = await start('config-no-cuda', { env: testEnv(), plan });
    const uri = await client.open(path.join(fixtures, 'config-no-cuda', 'finetune.yaml'));
    await client.diagnostics(uri);
    assert.equal(requests.length, 0, 'nothing asked of the engine before a lens is requested');
    assert.equal((await client.codeLens(uri))![0]!.command!.title, 'Memory estimate: computing…');
    await client.waitFor(() => client.lensRefreshes > 0);
    assert.equal((await client.codeLens(uri))![0]!.command!.title, 'Memory estimate: 3.50 GiB peak (weights 1.60 GiB, activations 1.20 GiB) · fits NVIDIA H100 (79.0 GiB free)');
    assert.equal(requests.length, 1);
    assert.equal((requests[0] as { quantization: string }).quantization, 'nf4');
  });
});

describe('Restricted Mode (untrusted workspace)', () => {
  test('linting works, but neither the lens nor a job starts the engine', async () => {
    const asked: unknown[] = [];
    const plan = async (config: unknown): Promise<TrainPlanResult> => {
      asked.push(config);
      throw new Error('the engine must not be asked in an untrusted workspace');
    };
    const client = await start('config-no-cuda', { env: testEnv(), plan, trusted: false });
    const file = path.join(fixtures, 'config-no-cuda', 'finetune.yaml');
    const uri = await client.open(file);
    const diagnostics = await client.diagnostics(uri);
    assert.ok(diagnostics.length > 0, 'the config is still linted');
    assert.equal((await client.codeLens(uri))![0]!.command!.title, RestrictedLensTitle);
    const planned = (await client.connection.sendRequest(L.TrainPlan, { configPath: file })) as L.TrainPlanResult;
    assert.equal(planned.problem?.code, L.JobErrorCodes.Untrusted);
    assert.match(planned.problem!.message, /Restricted Mode/);
    const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-untrusted-runs-'));
    const trained = (await client.connection.sendRequest(L.TrainStart, { configPath: file, runsDir, resumeRunDir: null })) as L.TrainStartResult;
    assert.equal(trained.started, null);
    assert.equal(trained.problem?.code, L.JobErrorCodes.Untrusted);
    assert.deepEqual(fs.readdirSync(runsDir), [], 'nothing written');
    assert.equal(asked.length, 0);
  });
});

describe('the lens never runs a model\'s own code (trusted workspace, real engine)', () => {
  test('trust_remote_code: true — a known architecture is estimated without its code; an unknown one is not computed', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-remote-code-'));
    for (const f of ['train.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(repo, 'samples', 'dialogsum', f), path.join(folder, f));
    const phi = JSON.parse(fs.readFileSync(path.join(repo, 'samples', 'models', 'phi-2', 'config.json'), 'utf8')) as Record<string, unknown>;
    const marker = (name: string): string => `open(${JSON.stringify(path.join(folder, name))}, "w").write("ran")\n`;
    const plant = (model: string, config: Record<string, unknown>): string => {
      fs.mkdirSync(path.join(folder, model));
      fs.writeFileSync(path.join(folder, model, 'config.json'), JSON.stringify({ ...config, auto_map: { AutoConfig: 'modeling_evil.EvilConfig', AutoModelForCausalLM: 'modeling_evil.EvilModel' } }));
      fs.writeFileSync(path.join(folder, model, 'modeling_evil.py'), marker(`MARKER-${model}`));
      const file = path.join(folder, `${model}.yaml`);
      fs.writeFileSync(file, `model: ./${model}\ntrust_remote_code: true\nquantization: none\ndata: { train: train.jsonl }\ntemplate: summarize.prompt.yaml\n`);
      return file;
    };
    const known = plant('phi-with-code', phi); // model_type phi: transformers has the class itself
    const unknown = plant('code-only', { ...phi, model_type: 'evil-arch' });
    const client = await LspClient.start(folder, { env: testEnv(), trusted: true });
    clients.push(client);
    const lensOf = async (file: string): Promise<string> => {
      const refreshes = client.lensRefreshes;
      const uri = await client.open(file);
      await client.diagnostics(uri);
      assert.equal((await client.codeLens(uri))![0]!.command!.title, 'Memory estimate: computing…');
      await client.waitFor(() => client.lensRefreshes > refreshes, 120_000);
      return (await client.codeLens(uri))![0]!.command!.title;
    };
    try {
      assert.match(await lensOf(known), /^Memory estimate: [\d.]+ GiB peak/);
      assert.equal(await lensOf(unknown), RemoteCodeLensTitle);
      assert.deepEqual(fs.readdirSync(folder).filter((f) => f.startsWith('MARKER-')), [], 'a model\'s code ran');
    } finally {
      await client.connection.sendRequest('shutdown'); // stops the server's engine process
    }
  });
});

describe('a failed run shows on its config', () => {
  test('diverged: an error on train.learning_rate with a quick fix; gone once the config changes', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-run-failed-'));
    for (const f of ['train.jsonl', 'summarize.prompt.yaml']) fs.copyFileSync(path.join(repo, 'samples', 'dialogsum', f), path.join(folder, f));
    const file = path.join(folder, 'finetune.yaml');
    fs.writeFileSync(file, 'model: diverge\nquantization: none\ndata: { train: train.jsonl }\ntemplate: summarize.prompt.yaml\ntrain:\n  max_steps: 3\n  learning_rate: 0.02\n');
    const client = await LspClient.start(folder, { env: testEnv(), launch: launchFakeEngine() });
    clients.push(client);
    const uri = await client.open(file);
    const before = await client.diagnostics(uri);
    assert.ok(!before.some((d) => d.code === 'run/failed'));
    const from = client.published.length;
    const started = (await client.connection.sendRequest(L.TrainStart, { configPath: file, runsDir: path.join(folder, 'runs'), resumeRunDir: null })) as L.TrainStartResult;
    assert.equal(started.problem, null);
    await client.waitFor(() => client.published.slice(from).some((p) => p.uri === uri && p.diagnostics.some((d) => d.code === 'run/failed')));
    const failed = client.published.filter((p) => p.uri === uri).at(-1)!.diagnostics.find((d) => d.code === 'run/failed')!;
    assert.equal(failed.severity, 1);
    assert.deepEqual(failed.range.start, { line: 6, character: 17 }, 'on the value of train.learning_rate');
    assert.match(text(failed), /^run .+ failed \(train\.learning_rate\): training diverged at step 1/);
    const actions = await client.codeActions(uri, failed.range, [failed]);
    assert.deepEqual(actions.map((a) => a.title), ['Halve train.learning_rate (0.02 → 0.01)']);
    const version = await client.change(uri, [{ range: failed.range, text: '0.01' }]);
    assert.ok(!(await client.diagnostics(uri, { version })).some((d) => d.code === 'run/failed'), 'cleared by the edit');
    await client.connection.sendRequest('shutdown'); // stops the server's (fake) engine process
  });
});

describe('completion', () => {
  test('template variables from the dataset fields', async () => {
    const client = await start('template-unknown-variable');
    const uri = await client.open(path.join(fixtures, 'template-unknown-variable', 'summarize.prompt.yaml'));
    await client.diagnostics(uri);
    const items = await client.completion(uri, 2, 7);
    assert.deepEqual(items.map((i) => [i.label, i.detail]), [['dialogue', 'field of train.jsonl'], ['summary', 'field of train.jsonl'], ['topic', 'field of train.jsonl']]);
    assert.deepEqual(await client.completion(uri, 1, 3), [], 'nothing outside {{ }}');
  });

  test('config keys and values from the JSON Schema', async () => {
    const client = await start('config-range');
    const file = path.join(fixtures, 'config-range', 'finetune.yaml');
    const text = `${fs.readFileSync(file, 'utf8')}  \nlora: { r: 16,  }\nquantization: \n`;
    const uri = await client.open(file, text);
    await client.diagnostics(uri);
    const inTrain = (await client.completion(uri, 10, 2)).map((i) => i.label);
    assert.ok(inTrain.includes('max_grad_norm') && inTrain.includes('seed'));
    assert.ok(!inTrain.includes('learning_rate') && !inTrain.includes('max_steps'), 'keys already present are not offered');
    assert.deepEqual((await client.completion(uri, 11, 15)).map((i) => i.label), ['alpha', 'dropout', 'target_modules']);
    assert.deepEqual((await client.completion(uri, 12, 14)).map((i) => i.label), ['nf4', 'fp4', 'int8', 'none']);
  });
});

describe('cross-file', () => {
  test('fixing the template re-lints the open dataset', async () => {
    const client = await start('template-unknown-variable');
    const dir = path.join(fixtures, 'template-unknown-variable');
    const dataUri = await client.open(path.join(dir, 'train.jsonl'));
    assert.ok((await client.diagnostics(dataUri)).some((d) => d.code === 'jsonl/missing-field'));
    const templateUri = await client.open(path.join(dir, 'summarize.prompt.yaml'));
    await client.diagnostics(templateUri);
    const from = client.published.length;
    await client.change(templateUri, [{ range: { start: { line: 2, character: 5 }, end: { line: 2, character: 11 } }, text: 'dialogue' }]);
    assert.deepEqual(await client.diagnostics(templateUri, { from }), []);
    const data = await client.diagnostics(dataUri, { from });
    assert.deepEqual(data.map((d) => d.code), ['jsonl/unused-fields']);
    assert.match(text(data[0]!), /never uses field "topic"/);
  });

  test('editing one split updates leakage in the other', async () => {
    const client = await start('leakage');
    const dir = path.join(fixtures, 'leakage');
    const trainUri = await client.open(path.join(dir, 'train.jsonl'));
    assert.deepEqual((await client.diagnostics(trainUri)).map((d) => d.code), ['jsonl/leakage']);
    const validationUri = await client.open(path.join(dir, 'validation.jsonl'));
    await client.diagnostics(validationUri);
    const from = client.published.length;
    // Change the leaked dialogue in validation line 2: train's leakage goes away.
    await client.change(validationUri, [{ range: { start: { line: 1, character: 20 }, end: { line: 1, character: 27 } }, text: 'snowing' }]);
    assert.deepEqual(await client.diagnostics(validationUri, { from }), []);
    assert.deepEqual(await client.diagnostics(trainUri, { from }), []);
  });
});
