/**
 * Chat records render byte for byte the same in TypeScript (server/src/templates/chat.ts, @huggingface/jinja) and
 * in the engine (engine/qlora_engine/chat.py: transformers' apply_chat_template): every sample conversation's
 * trained and untrained segments, its prompt, and the template's stop marker — with SmolLM2's own template and
 * with samples/chat/chatml.jinja.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { detectFormat, loadChatTemplate, toTurns, type ChatFormat } from '../../server/src/templates/chat';
import { repo } from './harness';
import { findPython, runPython } from './python';

const PY = `
import json, sys
data = json.load(sys.stdin)
sys.path.insert(0, data["engine"])
from qlora_engine.chat import load_chat_template, conversation
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(data["model"])
out = []
for case in data["cases"]:
    tmpl = load_chat_template(case["template"], tok, model=data["model"])
    rows = []
    for record in case["records"]:
        turns = conversation(record, case["format"])
        rows.append({"turns": turns, "segments": [[t, bool(k)] for t, k in tmpl.segments(turns)], "prompt": tmpl.prompt(turns)})
    out.append({"stop": list(tmpl.stop), "rows": rows})
print(json.dumps(out))
`;

const chat = path.join(repo, 'samples', 'chat');
const model = path.join(repo, 'samples', 'models', 'smollm2-135m-instruct');

function records(file: string): Record<string, unknown>[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

test('TypeScript and the engine cut the chat samples into the same segments, prompts and stop markers', (t) => {
  const python = findPython(['transformers', 'jinja2']);
  if (!python) return t.skip('no Python with transformers and jinja2 (set QLORA_STUDIO_PYTHON or run npm run setup:engine)');
  const files = ['messages', 'sharegpt', 'alpaca'].flatMap((f) => [`${f}.jsonl`, `${f}.validation.jsonl`]);
  const cases = [null, path.join(chat, 'chatml.jinja')].flatMap((template) =>
    files.map((file) => {
      const rows = records(path.join(chat, file));
      return { template, file, format: detectFormat(rows[0]!) as ChatFormat, records: rows };
    }),
  );
  assert.deepEqual([...new Set(cases.map((c) => c.format))], ['messages', 'sharegpt', 'alpaca']);
  const expected = runPython(python, PY, { engine: path.join(repo, 'engine'), model, cases }) as {
    stop: string[];
    rows: { turns: unknown; segments: [string, boolean][]; prompt: string }[];
  }[];
  let trainedTurns = 0;
  cases.forEach((c, i) => {
    const loaded = loadChatTemplate(c.template, model);
    assert.ok(loaded.ok, loaded.ok ? '' : loaded.message);
    const template = loaded.template;
    const where = `${c.file} with ${c.template ? 'chatml.jinja' : "SmolLM2's template"}`;
    assert.deepEqual(template.stop, expected[i]!.stop, `${where}: stop`);
    c.records.forEach((record, r) => {
      const { turns, problems } = toTurns(record, c.format);
      assert.deepEqual(problems, [], `${where} line ${r + 1}`);
      const want = expected[i]!.rows[r]!;
      assert.deepEqual(turns, want.turns, `${where} line ${r + 1}: turns`);
      const segments = template.segments(turns).map((s) => [s.text, s.trained]);
      assert.deepEqual(segments, want.segments, `${where} line ${r + 1}: segments`);
      assert.equal(template.prompt(turns), want.prompt, `${where} line ${r + 1}: prompt`);
      trainedTurns += segments.filter(([, trained]) => trained).length;
    });
  });
  // Every assistant turn of every record is a trained span (the multi-turn records have two).
  const assistantTurns = cases.reduce((n, c) => n + c.records.reduce((m, r) => m + toTurns(r, c.format).turns.filter((x) => x.role === 'assistant').length, 0), 0);
  assert.equal(trainedTurns, assistantTurns);
  assert.ok(expected.every((e) => e.stop.join() === '<|im_end|>'));
});
