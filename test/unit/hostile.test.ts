/**
 * Hostile and broken input, generated (fast-check, fixed seeds so a failure replays): the config loader, the
 * template parser and the dataset linter take malformed YAML, Jinja and JSONL — wrong types, huge numbers, deep
 * nesting, invalid UTF-8, binary, a 200,000-line file, a 10 MB line — and answer with diagnostics or named errors
 * (file, line, field), never an exception or a hang.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { loadConfigText } from '../../server/src/config/load';
import { lintPath } from '../../server/src/lint/headless';
import { parseTemplate } from '../../server/src/templates/template';
import { repo, tempDir } from '../support/helpers';

const SEED = 20261202;
const env = { ...process.env, HF_HUB_OFFLINE: '1', QLORA_STUDIO_CUDA: '0' };

let dir: string;
before(() => {
  dir = tempDir('qlora-hostile-');
  fs.copyFileSync(path.join(repo, 'samples', 'dialogsum', 'summarize.prompt.yaml'), path.join(dir, 'summarize.prompt.yaml'));
  fs.writeFileSync(path.join(dir, 'finetune.yaml'), `model: ${path.join(repo, 'samples', 'models', 'phi-2')}\nquantization: none\ndata: { train: train.jsonl }\ntemplate: summarize.prompt.yaml\nmax_length: 1024\n`);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const json = fc.jsonValue({ maxDepth: 4 });
const yamlish = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.array(fc.tuple(fc.constantFrom('model', 'data', 'template', 'train', 'lora', 'max_length', 'quantization', 'eval', 'x'), json), { maxLength: 8 }).map((pairs) =>
    pairs.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n'),
  ),
  fc.dictionary(fc.constantFrom('train', 'lora', 'data', 'eval'), fc.dictionary(fc.constantFrom('max_steps', 'r', 'micro_batch_size', 'gradient_checkpointing', 'train', 'target_modules', 'learning_rate', 'bogus'), json)).map((o) => JSON.stringify(o)),
);

async function lintDataset(name: string, bytes: Buffer): Promise<void> {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  const lines = bytes.toString('utf8').split('\n').length;
  const [result] = await lintPath(file, { cwd: dir, config: path.join(dir, 'finetune.yaml'), env });
  for (const d of result!.diagnostics) {
    assert.ok(d.code && d.message, JSON.stringify(d));
    assert.ok(d.range.start.line >= 0 && d.range.end.line < lines + 1, `${d.code} at line ${d.range.start.line} of ${lines}`);
  }
}

describe('hostile input (property-based, seed 20261202)', () => {
  it('configs: any text gives a config or errors with line and field', () => {
    fc.assert(
      fc.property(yamlish, (text) => {
        const result = loadConfigText(text, path.join(dir, 'finetune.yaml'));
        if (result.ok) return;
        assert.ok(result.errors.length > 0);
        for (const e of result.errors) {
          assert.ok(e.line >= 0 && typeof e.field === 'string', JSON.stringify(e));
          assert.ok(e.format(dir).length > 0);
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('templates: any text parses to a template or problems, never throws', () => {
    const jinja = fc.string({ unit: fc.constantFrom(...'{}%#()|x.y ab=\n\'"-+[]:'.split('')), maxLength: 60 });
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 120 }), fc.tuple(jinja, jinja).map(([p, r]) => `prompt: ${JSON.stringify(p)}\nresponse: ${JSON.stringify(r)}\n`)), (text) => {
        const t = parseTemplate(text, path.join(dir, 'x.prompt.yaml'));
        for (const p of t.problems) assert.ok(p.message && p.start >= 0 && p.end >= p.start, JSON.stringify(p));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('datasets: lines of JSON, junk and raw bytes lint to diagnostics inside the file', async () => {
    const line = fc.oneof(json.map((v) => JSON.stringify(v)), fc.string({ maxLength: 40 }), fc.constant('{"dialogue": "a", "summary": "b"}'));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.array(line, { maxLength: 20 }).map((ls) => Buffer.from(ls.join('\n'))), fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b))), async (bytes) => {
        await lintDataset('random.jsonl', bytes);
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('datasets: deep nesting, huge numbers, invalid UTF-8, a 10 MB line and 200,000 lines', async () => {
    await lintDataset('deep.jsonl', Buffer.from(`${'['.repeat(100_000)}\n{"dialogue": "a", "summary": "b"}\n`));
    await lintDataset('numbers.jsonl', Buffer.from(`{"dialogue": ${'9'.repeat(5000)}, "summary": 1e999}\n`));
    await lintDataset('utf8.jsonl', Buffer.concat([Buffer.from('{"dialogue": "'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('", "summary": "b"}\n')]));
    await lintDataset('long-line.jsonl', Buffer.from(`{"dialogue": "${'word '.repeat(2 << 20)}", "summary": "b"}\n`));
    await lintDataset('many.jsonl', Buffer.from('{"dialogue": "A: hi", "summary": "greeting"}\n'.repeat(200_000)));
  });
});
