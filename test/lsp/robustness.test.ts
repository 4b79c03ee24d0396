/** Rules never throw: a crashing rule becomes one `lint/internal` diagnostic and a log line. And the end-marker rule. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileRules, lineRules } from '../../server/src/lint/jsonl-rules';
import { standaloneContext } from '../../server/src/lint/jsonl/dataset-config';
import { lintJsonl } from '../../server/src/lint/jsonl/driver';
import { lintTemplate } from '../../server/src/lint/template';
import { MAX_PUBLISHED, publishable } from '../../server/src/lint/lsp';
import { span, type LintDiagnostic } from '../../server/src/lint/types';

test('a crashing line rule or file rule becomes a lint/internal diagnostic, logged', async () => {
  const logs: string[] = [];
  const lineCrash = { id: 'crash-line', scope: 'line' as const, codes: [], check: () => { throw new Error('boom'); } };
  const fileCrash = { id: 'crash-file', scope: 'file' as const, codes: [], check: () => { throw new Error('bang'); } };
  lineRules.push(lineCrash);
  fileRules.push(fileCrash);
  try {
    const result = await lintJsonl('{"a": "b"}\n[1]\n', standaloneContext(null, (m) => logs.push(m)));
    const internal = result!.diagnostics.filter((d) => d.code === 'lint/internal');
    assert.deepEqual(internal.map((d) => [d.range.start.line, d.message]), [
      [0, 'internal error in lint rule crash-line: boom (see the log)'],
      [0, 'internal error in lint rule crash-file: bang (see the log)'],
      [1, 'internal error in lint rule crash-line: boom (see the log)'],
    ]);
    assert.ok(result!.diagnostics.some((d) => d.code === 'jsonl/not-object'), 'the other rules still ran');
    assert.equal(logs.length, 3);
    assert.match(logs[0]!, /crash/);
  } finally {
    lineRules.splice(lineRules.indexOf(lineCrash), 1);
    fileRules.splice(fileRules.indexOf(fileCrash), 1);
  }
});

test('template/no-end: no EOS in the tokenizer and no stop marker', () => {
  const text = 'prompt: "{{ q }}\\nA:\\n"\nresponse: "{{ a }}"\n';
  const lint = (eosToken: string | null | undefined) => lintTemplate(text, 't.prompt.yaml', { fields: null, eosToken, log: () => {} }).map((d) => d.code);
  assert.deepEqual(lint(null), ['template/no-end']);
  assert.deepEqual(lint('<|endoftext|>'), []);
  assert.deepEqual(lint(undefined), [], 'unknown tokenizer: no claim');
  const withStop = lintTemplate(`${text}stop: ["A:"]\n`, 't.prompt.yaml', { fields: null, eosToken: null, log: () => {} }).map((d) => d.code);
  assert.deepEqual(withStop, ['template/stop-not-in-response']);
});

test('template syntax errors land on the tag in every YAML scalar style', () => {
  const cases = [
    'prompt: "Line\\n\\t{{ x"\nresponse: "{{ y }}"\n',
    "prompt: 'It''s {{ x'\nresponse: \"{{ y }}\"\n",
    'prompt: >\n  folded text\n  {{ x\nresponse: "{{ y }}"\n',
    'prompt: |2\n    indented {{ x\nresponse: "{{ y }}"\n',
    'prompt: |-\n  a\n\n  b {{ x\nresponse: "{{ y }}"\n',
    'prompt: plain {{ x\nresponse: "{{ y }}"\n',
  ];
  for (const text of cases) {
    const [d] = lintTemplate(text, 't.prompt.yaml', { fields: null, eosToken: undefined, log: () => {} });
    assert.equal(d?.code, 'template/syntax', text);
    const line = text.split('\n')[d.range.start.line]!;
    assert.equal(line.slice(d.range.start.character, d.range.end.character), '{{', text);
  }
});

test('at most 5,000 diagnostics are published per file, the most severe first, with a note', () => {
  const many: LintDiagnostic[] = [];
  for (let line = 0; line < 6000; line++) {
    many.push({ range: span(line, 0, 1), severity: line % 1000 === 0 ? 'error' : 'hint', code: line % 1000 === 0 ? 'jsonl/invalid-json' : 'jsonl/whitespace', message: 'x' });
  }
  const published = publishable(many);
  assert.equal(published.length, MAX_PUBLISHED + 1);
  assert.equal(published[0]!.code, 'lint/truncated');
  assert.match(String(published[0]!.message), /^6,000 problems; the 5,000 most severe are shown/);
  assert.equal(published.filter((d) => d.code === 'jsonl/invalid-json').length, 6, 'every error kept');
  assert.deepEqual(publishable(many.slice(0, 10)).length, 10);
});
