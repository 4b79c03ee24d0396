/**
 * Templates render byte for byte the same in TypeScript (@huggingface/jinja, server/src/templates) and in the
 * engine (engine/qlora_engine/template.py's load_template: jinja2, sandboxed, StrictUndefined, trailing newline
 * kept, no trim/lstrip of blocks).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isRenderable, parseTemplate, renderRecord } from '../../server/src/templates/template';
import { fixtures, repo } from './harness';
import { findPython, runPython } from './python';

const PY = `
import json, sys
data = json.load(sys.stdin)
sys.path.insert(0, data["engine"])
from qlora_engine.template import load_template
out = []
for case in data["cases"]:
    t = load_template(case["template"])
    out.append([list(t.render(r)) for r in case["records"]])
print(json.dumps(out))
`;

function records(file: string): Record<string, unknown>[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

test('TypeScript and Python render the samples byte for byte alike', (t) => {
  const python = findPython(['jinja2', 'yaml']);
  if (!python) return t.skip('no Python with jinja2 and pyyaml (set QLORA_STUDIO_PYTHON or run npm run setup:engine)');
  const dialogsum = path.join(repo, 'samples', 'dialogsum');
  const sample = [...records(path.join(dialogsum, 'train.jsonl')), ...records(path.join(dialogsum, 'validation.jsonl'))];
  const cases = [
    { template: path.join(dialogsum, 'summarize.prompt.yaml'), records: sample },
    { template: path.join(repo, 'bench', 'tutorial.prompt.yaml'), records: sample.slice(0, 50) },
    { template: path.join(fixtures, 'template-parity', 'blocks.prompt.yaml'), records: records(path.join(fixtures, 'template-parity', 'records.jsonl')) },
    { template: path.join(fixtures, 'render-error', 'turns.prompt.yaml'), records: records(path.join(fixtures, 'render-error', 'train.jsonl')).slice(0, 1) },
    // Records 1 and 3 (record 2 lacks `input`, which the engine's StrictUndefined rejects and the lint reports).
    { template: path.join(fixtures, 'optional-fields', 'alpaca.prompt.yaml'), records: records(path.join(fixtures, 'optional-fields', 'train.jsonl')).filter((r) => 'input' in r) },
  ];
  const expected = runPython(python, PY, { engine: path.join(repo, 'engine'), cases }) as [string, string][][];
  cases.forEach((c, i) => {
    const template = parseTemplate(fs.readFileSync(c.template, 'utf8'), c.template);
    assert.ok(isRenderable(template), `${c.template}: ${JSON.stringify(template.problems)}`);
    const actual = c.records.map((r) => {
      const out = renderRecord(template, r);
      return [out.prompt, out.response];
    });
    assert.deepEqual(actual, expected[i], c.template);
  });
  // The sample template keeps the newline after "Output:" (keep_trailing_newline), as the tutorial's prompt has it.
  assert.ok(expected[0]![0]![0].endsWith('\nOutput:\n'));
});
