/** `qlora-studio lint`: the editor's diagnostics as `file:line:col severity code message` or JSON; exit 1 on errors. */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { runCli } from '../../server/src/cli/main';
import type { CliContext } from '../../server/src/cli/subcommand';
import { fixtures, testEnv } from './harness';

async function lint(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const ctx: CliContext = {
    cwd,
    env: testEnv(),
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    signals: { on: () => undefined, off: () => undefined },
  };
  const code = await runCli(['lint', ...args], ctx);
  return { code, stdout, stderr };
}

describe('qlora-studio lint', () => {
  test('a dataset with errors: text lines, 1-based, exit 1', async () => {
    const r = await lint(['data.jsonl'], path.join(fixtures, 'invalid-json'));
    assert.equal(r.code, 1);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      "data.jsonl:2:47 error jsonl/invalid-json invalid JSON: trailing comma before '}'",
      "data.jsonl:3:2 error jsonl/invalid-json invalid JSON: expected a field name in double quotes, found '''",
      'data.jsonl:4:14 error jsonl/invalid-json invalid JSON: string never closed',
    ]);
    assert.match(r.stderr, /^3 error\(s\), 0 warning\(s\), 0 note\(s\) in data.jsonl/);
  });

  test('--json: an array with 1-based ranges', async () => {
    const r = await lint(['train.jsonl', '--json'], path.join(fixtures, 'duplicate'));
    assert.equal(r.code, 0, 'warnings only');
    const rows = JSON.parse(r.stdout);
    assert.deepEqual(rows[0], { file: 'train.jsonl', line: 3, column: 1, endLine: 3, endColumn: 90, severity: 'warning', code: 'jsonl/duplicate', message: 'duplicate record: same rendered prompt as line 1' });
    assert.equal(rows.length, 2);
  });

  test('--config links a dataset to a config elsewhere', async () => {
    const dir = path.join(fixtures, 'template-fields');
    const r = await lint([path.join(dir, 'train.jsonl'), '--config', path.join(dir, 'finetune.yaml'), '--json'], fixtures);
    assert.equal(r.code, 1);
    const codes = JSON.parse(r.stdout).map((x: { code: string }) => x.code);
    assert.deepEqual(codes, ['jsonl/missing-field', 'jsonl/unused-fields', 'jsonl/null-field', 'jsonl/empty-field', 'jsonl/non-string-field']);
  });

  test('a config: its own problems, then its template and data', async () => {
    const r = await lint(['finetune.yaml'], path.join(fixtures, 'config-target-module'));
    assert.equal(r.code, 1);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^finetune.yaml:7:52 error config\/target-module "query_key_value" is not a linear layer of a phi model; valid names \(from the phi architecture\): q_proj, k_proj, v_proj, dense, fc1, fc2, lm_head$/);
    assert.match(r.stderr, /in finetune.yaml, .*summarize.prompt.yaml, .*train.jsonl/);
  });

  test('a template', async () => {
    const r = await lint(['bad.prompt.yaml'], path.join(fixtures, 'template-syntax'));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^bad.prompt.yaml:3:3 error template\/syntax '\{\{' is never closed with '\}\}'$/m);
  });

  test('bad input: exit 2', async () => {
    assert.equal((await lint(['missing.jsonl'], fixtures)).code, 2);
    assert.equal((await lint([], fixtures)).code, 2);
    assert.equal((await lint(['README.md'], fixtures)).code, 2);
  });
});
