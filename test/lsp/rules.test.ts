/**
 * One fixture folder per rule (test/fixtures/lint/<rule>/), opened in the real server over streams: every
 * diagnostic published must be listed here with its code and exact range — nothing missing, nothing extra.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixtures, LspClient, summary, text } from './harness';

type Expected = [code: string, line: number, character: number, endLine: number, endCharacter: number];

const table: { folder: string; file: string; expect: Expected[]; messages?: RegExp[] }[] = [
  {
    folder: 'invalid-json',
    file: 'data.jsonl',
    expect: [['jsonl/invalid-json', 1, 46, 1, 47], ['jsonl/invalid-json', 2, 1, 2, 2], ['jsonl/invalid-json', 3, 13, 3, 14]],
    messages: [/trailing comma before '\}'/, /field name in double quotes/, /string never closed/],
  },
  { folder: 'not-object', file: 'data.jsonl', expect: [['jsonl/not-object', 1, 0, 1, 6], ['jsonl/not-object', 2, 0, 2, 11], ['jsonl/not-object', 3, 0, 3, 2]], messages: [/a list/, /a string/, /a number/] },
  {
    folder: 'template-fields',
    file: 'train.jsonl',
    expect: [
      ['jsonl/missing-field', 1, 0, 1, 47],
      ['jsonl/unused-fields', 1, 0, 1, 47],
      ['jsonl/null-field', 2, 13, 2, 17],
      ['jsonl/empty-field', 3, 34, 3, 36],
      ['jsonl/non-string-field', 4, 13, 4, 23],
    ],
    messages: [/missing field "summary"/, /never uses field "sumary"/, /"dialogue" is null/, /"summary" is empty/, /"dialogue" is a list/],
  },
  { folder: 'optional-fields', file: 'train.jsonl', expect: [['jsonl/missing-field', 1, 0, 1, 46]], messages: [/missing field "input"/] },
  {
    folder: 'test-split',
    file: 'test.jsonl',
    expect: [['jsonl/unused-fields', 0, 0, 0, 75], ['jsonl/missing-field', 1, 0, 1, 24], ['jsonl/too-long', 2, 0, 2, 318]],
    messages: [/fields "summary1", "summary2"/, /missing field "dialogue"/, /^the prompt is \d+ tokens, over max_length 48: evaluation skips this record/],
  },
  { folder: 'unused-fields', file: 'train.jsonl', expect: [['jsonl/unused-fields', 0, 0, 0, 61]], messages: [/fields "id", "topic"/] },
  { folder: 'duplicate', file: 'train.jsonl', expect: [['jsonl/duplicate', 2, 0, 2, 89], ['jsonl/duplicate', 3, 0, 3, 75]], messages: [/as line 1$/, /as line 2$/] },
  { folder: 'leakage', file: 'train.jsonl', expect: [['jsonl/leakage', 1, 0, 1, 71]], messages: [/validation split \(validation.jsonl line 2\)/] },
  { folder: 'leakage', file: 'validation.jsonl', expect: [['jsonl/leakage', 1, 0, 1, 73]], messages: [/train split \(train.jsonl line 2\)/] },
  { folder: 'too-long', file: 'train.jsonl', expect: [['jsonl/too-long', 1, 0, 1, 657]], messages: [/^\d+ tokens \(prompt \d+ \+ response \d+\) exceed max_length 64/] },
  { folder: 'empty-response', file: 'train.jsonl', expect: [['jsonl/empty-response', 1, 34, 1, 39], ['jsonl/whitespace', 1, 34, 1, 39]] },
  { folder: 'bom', file: 'data.jsonl', expect: [['jsonl/bom', 0, 0, 0, 0]] },
  { folder: 'line-endings', file: 'data.jsonl', expect: [['jsonl/mixed-line-endings', 1, 40, 1, 40]], messages: [/1 CRLF and 2 LF/] },
  { folder: 'invalid-utf8', file: 'data.jsonl', expect: [['jsonl/invalid-utf8', 1, 20, 1, 21]] },
  { folder: 'whitespace', file: 'data.jsonl', expect: [['jsonl/whitespace', 0, 34, 0, 47], ['jsonl/whitespace', 1, 13, 1, 24]], messages: [/leading and trailing/, /"dialogue" has trailing/] },
  { folder: 'render-error', file: 'train.jsonl', expect: [['jsonl/render-error', 1, 0, 1, 34]], messages: [/Expected iterable/] },
  { folder: 'tokenizer-unavailable', file: 'train.jsonl', expect: [['jsonl/tokenizer-unavailable', 0, 0, 0, 46]], messages: [/not in the Hugging Face cache/] },
  { folder: 'config-error', file: 'train.jsonl', expect: [['jsonl/config-error', 0, 0, 0, 46]], messages: [/finetune.yaml has 1 error/] },
  {
    folder: 'chat-structure',
    file: 'train.jsonl',
    expect: [['jsonl/chat-structure', 1, 13, 1, 38], ['jsonl/chat-structure', 2, 70, 2, 97], ['jsonl/chat-structure', 3, 42, 3, 74]],
    messages: [/^"messages" is a string, not a list/, /^messages\[1\] is a list: a turn is an object/, /^messages\[0\]\.content is a list/],
  },
  {
    folder: 'chat-unknown-role',
    file: 'train.jsonl',
    expect: [['jsonl/unknown-role', 1, 83, 1, 88], ['jsonl/unknown-role', 2, 28, 2, 35], ['jsonl/unknown-role', 3, 28, 3, 38]],
    messages: [/^conversations\[1\]\.from "bot" is not a known role: use "system", "human", "user", "gpt", "assistant"$/, /"Human"/, /"narrator"/],
  },
  {
    folder: 'chat-empty-turn',
    file: 'train.jsonl',
    expect: [['jsonl/empty-turn', 0, 103, 0, 105], ['jsonl/empty-turn', 1, 44, 1, 48], ['jsonl/empty-turn', 2, 42, 2, 46], ['jsonl/empty-turn', 3, 72, 3, 93]],
    messages: [/^messages\[1\]\.content is empty/, /only whitespace/, /is null/, /^messages\[1\] has no "content"/],
  },
  {
    folder: 'chat-turn-order',
    file: 'train.jsonl',
    expect: [['jsonl/turn-order', 0, 79, 0, 85], ['jsonl/turn-order', 1, 79, 1, 87], ['jsonl/turn-order', 2, 23, 2, 34]],
    messages: [/a user turn follows a user turn/, /a system turn may only come first/, /must start with a user turn/],
  },
  {
    folder: 'chat-no-assistant-end',
    file: 'train.jsonl',
    expect: [['jsonl/no-assistant-end', 0, 72, 0, 78], ['jsonl/no-assistant-end', 1, 127, 1, 133]],
    messages: [/ends with a user turn \(messages\[1\]\.role\)/, /ends with a user turn \(messages\[2\]\.role\)/],
  },
  { folder: 'chat-too-long', file: 'train.jsonl', expect: [['jsonl/too-long', 1, 0, 1, 525]], messages: [/^\d+ tokens \(2 turns, \d+ trained\) exceed max_length 48: training drops this conversation$/] },
  { folder: 'chat-duplicate', file: 'train.jsonl', expect: [['jsonl/leakage', 1, 0, 1, 119], ['jsonl/duplicate', 2, 0, 2, 122]], messages: [/validation split \(validation.jsonl line 2\)/, /same rendered prompt as line 1$/] },
  { folder: 'chat-duplicate', file: 'validation.jsonl', expect: [['jsonl/leakage', 1, 0, 1, 118]], messages: [/train split \(train.jsonl line 2\)/] },
  { folder: 'chat-unused-fields', file: 'train.jsonl', expect: [['jsonl/unused-fields', 0, 0, 0, 143]], messages: [/^the sharegpt format never reads fields "id", "topic"/] },
  {
    folder: 'chat-no-template',
    file: 'train.jsonl',
    expect: [['jsonl/no-chat-template', 0, 0, 0, 118], ['jsonl/no-assistant-end', 1, 23, 1, 29]],
    messages: [/^conversations not rendered, token lengths not checked: the model .*tiny-phi has no chat template/, /ends with a user turn/],
  },
  { folder: 'chat-no-template', file: 'finetune.yaml', expect: [['config/chat-template', 1, 7, 1, 42]], messages: [/has no chat template .*: set chat_template: in the config to a Jinja file, e\.g\. samples\/chat\/chatml\.jinja$/] },
  { folder: 'config-chat-template', file: 'finetune.yaml', expect: [['config/chat-template', 5, 15, 5, 30]], messages: [/last-only\.jinja is not prefix-stable/] },
  { folder: 'template-syntax', file: 'bad.prompt.yaml', expect: [['template/syntax', 2, 2, 2, 4], ['template/syntax', 4, 24, 4, 38]], messages: [/'\{\{' is never closed/, /'\{% if %\}' is never closed/] },
  { folder: 'template-unknown-variable', file: 'summarize.prompt.yaml', expect: [['template/unknown-variable', 2, 5, 2, 11]], messages: [/"dialog" — did you mean "dialogue"\? \(fields: dialogue, summary, topic\)/] },
  { folder: 'template-separator', file: 'plain.prompt.yaml', expect: [['template/no-separator', 0, 0, 0, 6]] },
  { folder: 'template-stop', file: 'stop.prompt.yaml', expect: [['template/stop-not-in-response', 1, 0, 1, 8]], messages: [/"### End" never appears/] },
  { folder: 'template-keys', file: 'keys.prompt.yaml', expect: [['template/missing-response', 0, 0, 0, 36], ['template/unknown-key', 1, 0, 1, 7], ['template/bad-stop', 2, 0, 2, 4]] },
  { folder: 'template-yaml', file: 'broken.prompt.yaml', expect: [['template/yaml', 2, 0, 2, 1]] },
  {
    folder: 'config-target-module',
    file: 'finetune.yaml',
    expect: [['config/target-module', 6, 51, 6, 66]],
    messages: [/^"query_key_value" is not a linear layer of a phi model; valid names \(from the phi architecture\): q_proj, k_proj, v_proj, dense, fc1, fc2, lm_head$/],
  },
  {
    folder: 'config-all-linear',
    file: 'finetune.yaml',
    expect: [['config/target-module', 6, 43, 6, 53]],
    messages: [/^"all-linear" targets every linear layer but the output head; use it alone: target_modules: \[all-linear\]$/],
  },
  { folder: 'config-no-cuda', file: 'finetune.yaml', expect: [['config/no-cuda', 2, 14, 2, 17]] },
  { folder: 'config-schema', file: 'finetune.yaml', expect: [['config/schema', 7, 2, 7, 14]], messages: [/did you mean "learning_rate"/] },
  { folder: 'config-missing-file', file: 'finetune.yaml', expect: [['config/missing-file', 3, 15, 3, 25]] },
  {
    folder: 'config-range',
    file: 'finetune.yaml',
    expect: [['config/range', 5, 12, 5, 16], ['config/range', 6, 0, 6, 5], ['config/range', 6, 0, 6, 5], ['config/range', 7, 17, 7, 21], ['config/range', 9, 16, 9, 18]],
  },
  { folder: 'config-model-unchecked', file: 'finetune.yaml', expect: [['config/model-unchecked', 1, 7, 1, 35]] },
  {
    folder: 'config-evaluation',
    file: 'finetune.yaml',
    expect: [['config/evaluation', 6, 15, 6, 21], ['config/evaluation', 6, 15, 6, 21]],
    messages: [/^best_metric rouge1 needs ROUGE evaluations: set train\.rouge_every > 0$/, /^best_metric needs validation records/],
  },
  {
    folder: 'config-early-stopping',
    file: 'finetune.yaml',
    expect: [['config/evaluation', 6, 28, 6, 34]],
    messages: [/^early_stopping\.metric rouge2 needs ROUGE evaluations: set train\.rouge_every > 0$/],
  },
];

describe('lint rules over the language server', () => {
  const clients: LspClient[] = [];
  after(() => clients.forEach((c) => c.dispose()));

  for (const row of table) {
    test(`${row.folder}/${row.file}`, async () => {
      const root = path.join(fixtures, row.folder);
      const client = await LspClient.start(root);
      clients.push(client);
      const uri = await client.open(path.join(root, row.file));
      const diagnostics = await client.diagnostics(uri);
      assert.deepEqual(summary(diagnostics), [...row.expect].sort((a, b) => a[1] - b[1] || a[2] - b[2] || a[0].localeCompare(b[0])));
      for (const d of diagnostics) assert.equal(d.source, 'qlora-studio');
      const sorted = [...diagnostics].sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
      row.messages?.forEach((pattern, i) => assert.match(text(sorted[i]!), pattern));
      assert.equal(client.publishesFor(uri).length, 1, 'published once');
    });
  }
});

describe('severities', () => {
  let client: LspClient;
  before(async () => {
    client = await LspClient.start(path.join(fixtures, 'template-fields'));
  });
  after(() => client.dispose());
  test('errors are errors, unused fields are information, whitespace is a hint', async () => {
    const uri = await client.open(path.join(fixtures, 'template-fields', 'train.jsonl'));
    const d = await client.diagnostics(uri);
    const bySeverity = new Map(d.map((x) => [x.code, x.severity]));
    assert.equal(bySeverity.get('jsonl/missing-field'), 1);
    assert.equal(bySeverity.get('jsonl/unused-fields'), 3);
  });
});
