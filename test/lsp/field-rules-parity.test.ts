/**
 * The linter and the engine agree on which records a template can use: every lint fixture whose config names a
 * template and training data is linted (jsonl/missing-field, null-field, empty-field, non-string-field) and run
 * through the engine's own field check (engine/qlora_engine/data.py's field_problems, the rule the engine applies
 * before training), and the two must flag the same fields on the same lines.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { lintPath } from '../../server/src/lint/headless';
import { configRefs } from '../../server/src/lint/workspace';
import { fixtures, repo, testEnv } from './harness';
import { findPython, runPython } from './python';

const FieldCodes = new Set(['jsonl/missing-field', 'jsonl/null-field', 'jsonl/empty-field', 'jsonl/non-string-field']);

const PY = `
import json, sys
data = json.load(sys.stdin)
sys.path.insert(0, data["engine"])
from qlora_engine.data import field_problems, read_jsonl
from qlora_engine.template import load_template
print(json.dumps([[[line, name] for line, name, _ in field_problems(read_jsonl(c["train"]), load_template(c["template"]))]
                  for c in data["cases"]]))
`;

test('the linter and the engine flag the same record fields, fixture by fixture', async (t) => {
  const python = findPython(['jinja2', 'yaml']);
  if (!python) return t.skip('no Python with jinja2 and pyyaml (set QLORA_STUDIO_PYTHON or run npm run setup:engine)');
  const cases: { folder: string; config: string; template: string; train: string }[] = [];
  for (const folder of fs.readdirSync(fixtures).sort()) {
    const config = path.join(fixtures, folder, 'finetune.yaml');
    if (!fs.existsSync(config)) continue;
    const refs = configRefs(fs.readFileSync(config, 'utf8'), config);
    if (!refs?.template || !refs.train || !fs.existsSync(refs.template) || !fs.existsSync(refs.train)) continue;
    // A template the linter cannot compile has its own errors; the engine refuses it before any record.
    const templateDiagnostics = (await lintPath(refs.template, { cwd: path.dirname(config), config, env: testEnv() }))[0]!.diagnostics;
    if (templateDiagnostics.some((d) => d.severity === 'error')) continue;
    const jsonl = (await lintPath(refs.train, { cwd: path.dirname(config), config, env: testEnv() }))[0]!.diagnostics;
    if (jsonl.some((d) => d.code === 'jsonl/invalid-json' || d.code === 'jsonl/not-object' || d.code === 'jsonl/invalid-utf8')) continue;
    cases.push({ folder, config, template: refs.template, train: refs.train });
  }
  assert.ok(cases.length >= 5, `only ${cases.length} fixtures to compare`);
  assert.ok(cases.some((c) => c.folder === 'optional-fields') && cases.some((c) => c.folder === 'template-fields'));
  const engine = runPython(python, PY, { engine: path.join(repo, 'engine'), cases }) as [number, string][][];
  for (const [i, c] of cases.entries()) {
    const diagnostics = (await lintPath(c.train, { cwd: path.dirname(c.config), config: c.config, env: testEnv() }))[0]!.diagnostics;
    const lint = diagnostics
      .filter((d) => FieldCodes.has(d.code))
      .map((d) => [d.range.start.line + 1, /field "([^"]+)"/.exec(d.message)?.[1] ?? '?'] as [number, string])
      .sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
    const py = [...engine[i]!].sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
    assert.deepEqual(py, lint, `${c.folder}: engine ${JSON.stringify(py)} vs linter ${JSON.stringify(lint)}`);
  }
});
