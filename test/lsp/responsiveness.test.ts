/**
 * A 200,000-line dataset never blocks the server: linting runs in slices (other requests are answered in
 * between), a newer edit abandons the run in progress, and only the final version is published. Also: re-linting
 * after edits (which reuses the unchanged head and tail of the file) gives exactly what a fresh lint gives.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { datasetContext } from '../../server/src/lint/dataset';
import { readFileText } from '../../server/src/lint/jsonl/dataset-config';
import { LineCache, lintJsonl } from '../../server/src/lint/jsonl/driver';
import { LspClient, repo } from './harness';

function bigDataset(lines: number): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(JSON.stringify({ id: i, dialogue: `#Person1#: Message ${i}.\n#Person2#: Reply ${i % 997}.`, summary: `Summary ${i}.` }));
  return `${out.join('\n')}\n`;
}

test('a 200,000-line file: requests answered while linting, stale runs abandoned, one publish', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-lint-big-'));
  const file = path.join(dir, 'big.jsonl');
  const text = bigDataset(200_000);
  fs.writeFileSync(file, text);
  const client = await LspClient.start(dir);
  try {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const uri = await client.open(file, text);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    const hover = await client.hover(uri, 5, 3);
    const hoverMs = performance.now() - t0;
    assert.match((hover!.contents as { value: string }).value, /no config names this file/);
    // Two quick edits: the runs for versions 1 and 2 are abandoned, version 3 is published.
    await client.change(uri, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '{"broken": \n' }]);
    const v3 = await client.change(uri, [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, text: '[1]\n' }]);
    const diagnostics = await client.diagnostics(uri, { version: v3, timeoutMs: 60_000 });
    delay.disable();
    assert.deepEqual(client.publishesFor(uri).map((p) => p.version), [v3], 'only the final version is published');
    assert.deepEqual(diagnostics.map((d) => [d.code, d.range.start.line]), [['jsonl/invalid-json', 0], ['jsonl/not-object', 1]]);
    const maxBlockMs = delay.max / 1e6;
    assert.ok(hoverMs < 1000, `hover answered in ${hoverMs.toFixed(0)} ms during the lint`);
    assert.ok(maxBlockMs < 1000, `longest event-loop block ${maxBlockMs.toFixed(0)} ms`);
  } finally {
    client.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('re-lint after edits equals a fresh lint (head/tail reuse and the line cache)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-lint-edit-'));
  const config = path.join(dir, 'finetune.yaml');
  const data = path.join(repo, 'samples', 'dialogsum', 'train.jsonl');
  fs.writeFileSync(
    config,
    `model: ${path.join(repo, 'samples', 'models', 'phi-2')}\nquantization: none\ndata: { train: ${data} }\ntemplate: ${path.join(repo, 'samples', 'dialogsum', 'summarize.prompt.yaml')}\nmax_length: 256\n`,
  );
  const ctx = await datasetContext(data, config, { readText: readFileText, log: () => {} });
  assert.ok(ctx.tokenizer, ctx.tokenizerProblem ?? '');
  let lines = fs.readFileSync(data, 'utf8').split('\n');
  const cache = new LineCache();
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const edits: ((ls: string[]) => void)[] = [
    (ls) => ls.splice(random(ls.length), 0, ls[random(ls.length)]!), // duplicate a line
    (ls) => ls.splice(random(ls.length), 1), // delete a line
    (ls) => {
      const i = random(ls.length);
      ls[i] = ls[i]!.replace('"summary": "', '"summary": " ');
    },
    (ls) => {
      const i = random(ls.length);
      ls[i] = ls[i]!.slice(0, -3);
    },
    (ls) => {
      const i = random(ls.length);
      ls[i] = `${ls[i]}\r`;
    },
    (ls) => ls.splice(0, 0, '[]'),
    (ls) => ls.push('{"dialogue": "x", "summary": "y"}'),
  ];
  for (let round = 0; round < 40; round++) {
    lines = [...lines];
    edits[random(edits.length)]!(lines);
    const text = lines.join('\n');
    const incremental = await lintJsonl(text, ctx, { cache });
    const fresh = await lintJsonl(text, ctx);
    assert.deepEqual(incremental!.diagnostics, fresh!.diagnostics, `round ${round}`);
    assert.deepEqual(incremental!.stats, fresh!.stats, `round ${round}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
