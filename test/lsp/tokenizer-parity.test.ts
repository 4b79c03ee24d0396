/**
 * Token counts equal Python's: the fast byte-level BPE (server/src/tokenizer/bpe.ts) and @huggingface/transformers'
 * AutoTokenizer against transformers' AutoTokenizer, for every model the samples name (Phi-2; SmolLM2, a Llama, as
 * imported from its GGUF) — the DialogSum sample rendered through each model's template, and strings that stress the
 * pre-tokenizer (runs of spaces and tabs, Unicode spaces, special tokens in text, contractions, emoji).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { parseTemplate, renderRecord, isRenderable } from '../../server/src/templates/template';
import { loadTokenizer } from '../../server/src/tokenizer/load';
import { repo } from './harness';
import { findPython, runPython } from './python';

const models = [
  { name: 'phi-2', template: 'summarize.prompt.yaml' },
  { name: 'smollm2-135m-instruct', template: 'smollm2.prompt.yaml' },
];

const PY = `
import json, sys
from transformers import AutoTokenizer
data = json.load(sys.stdin)
tok = AutoTokenizer.from_pretrained(data["model"])
print(json.dumps({
  "ids": [tok(t, add_special_tokens=False)["input_ids"] for t in data["texts"]],
  "prompt_counts": [len(tok(t)["input_ids"]) for t in data["prompts"]],
  "eos": tok.eos_token_id,
}))
`;

const tricky = [
  'Hello  world\n\n   x',
  'tabs\t\t\tand    spaces     ',
  ' '.repeat(40) + 'forty spaces, then\t'.repeat(3),
  'unicode: café naïve 日本語 🤖 emoji 👩‍👩‍👧',
  'next\u0085line, no-break\u00a0space, ideographic\u3000space, bom\ufeffinside',
  '<|endoftext|> special token in text<|endoftext|>',
  '<|im_start|>user\nchat markers<|im_end|>\n<|im_start|>assistant\n',
  'numbers 1234567 3.14159 1,000,000',
  "don't I'll we've THEY'RE it's",
  'windows\r\nline\r\nendings\r\n',
  '',
  ' ',
  '\n',
  "''s ' 's a' 'll 'LL x'  y",
  'x  \n  y\t\n \tz \u000b\f\r end ',
  '!!!??? a1b2 3x --> <<= {"k": [1, 2]}',
  'end\n\n\n',
];

function sampleTexts(templateFile: string): { prompts: string[]; responses: string[] } {
  const dir = path.join(repo, 'samples', 'dialogsum');
  const template = parseTemplate(fs.readFileSync(path.join(dir, templateFile), 'utf8'), templateFile);
  assert.ok(isRenderable(template));
  const prompts: string[] = [];
  const responses: string[] = [];
  for (const split of ['train', 'validation', 'test']) {
    for (const line of fs.readFileSync(path.join(dir, `${split}.jsonl`), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const record = JSON.parse(line);
      record.summary ??= record.summary1;
      const r = renderRecord(template, record);
      prompts.push(r.prompt);
      responses.push(r.response);
    }
  }
  return { prompts, responses };
}

for (const model of models) {
  test(`${model.name}: token ids equal Python transformers' (fast path and transformers.js)`, async (t) => {
    const dir = path.join(repo, 'samples', 'models', model.name);
    if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) return t.skip(`${dir} is not there (npm run setup:engine imports it)`);
    const python = findPython(['transformers']);
    if (!python) return t.skip('no Python with transformers (set QLORA_STUDIO_PYTHON or run npm run setup:engine)');
    const { prompts, responses } = sampleTexts(model.template);
    const texts = [...prompts, ...responses, ...tricky];
    const expected = runPython(python, PY, { model: dir, texts, prompts }) as { ids: number[][]; prompt_counts: number[]; eos: number };

    const fast = await loadTokenizer(dir, repo);
    assert.ok(fast.ok, fast.ok ? '' : fast.reason);
    assert.equal(fast.tokenizer.engine, 'byte-level BPE (tokenizer.json)');
    texts.forEach((text, i) => assert.deepEqual(fast.tokenizer.encode(text), expected.ids[i], JSON.stringify(text.slice(0, 80))));
    texts.forEach((text, i) => assert.equal(fast.tokenizer.count(text), expected.ids[i]!.length));
    assert.equal(fast.tokenizer.eosId, expected.eos);
    // The prompt count the lint uses (BOS when the tokenizer adds one; none for these two) equals len(tok(prompt)).
    prompts.forEach((p, i) => assert.equal(fast.tokenizer.count(p) + (fast.tokenizer.bosId === null ? 0 : 1), expected.prompt_counts[i]));

    const { AutoTokenizer, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.localModelPath = path.dirname(dir) + path.sep;
    const js = await AutoTokenizer.from_pretrained(model.name);
    texts.forEach((text, i) => assert.deepEqual(Array.from(js.encode(text, { add_special_tokens: false })), expected.ids[i], `transformers.js: ${JSON.stringify(text.slice(0, 80))}`));
  });
}
