import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { ConfigError } from '../../server/src/config/errors';
import { isPathLike, loadConfig, loadConfigText, parseOverrideNumber } from '../../server/src/config/load';
import { configToYaml } from '../../server/src/config/serialize';
import { repo, tempDir } from '../support/helpers';

let dir: string;
before(() => {
  dir = tempDir('qlora-config-');
  fs.mkdirSync(path.join(dir, 'data'));
  fs.mkdirSync(path.join(dir, 'models', 'tiny'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'data', 'train.jsonl'), '{"dialogue":"a","summary":"b"}\n');
  fs.writeFileSync(path.join(dir, 'data', 'val.jsonl'), '{"dialogue":"a","summary":"b"}\n');
  fs.writeFileSync(path.join(dir, 'data', 'chat.jsonl'), '{"conversations":[{"from":"human","value":"a"},{"from":"gpt","value":"b"}]}\n');
  fs.writeFileSync(path.join(dir, 'prompt.yaml'), 'prompt: "{{ dialogue }}"\nresponse: "{{ summary }}"\n');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const minimal = `model: ./models/tiny
data:
  train: data/train.jsonl
template: prompt.yaml
`;

function load(text: string, name = 'finetune.yaml') {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return loadConfig(file);
}

function errorsOf(text: string): ConfigError[] {
  const result = load(text);
  assert.equal(result.ok, false, 'expected errors');
  return result.ok ? [] : result.errors;
}

describe('config: defaults and paths', () => {
  it('fills every default from the schema', () => {
    const result = load(minimal);
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    const c = result.config;
    assert.equal(c.quantization, 'nf4');
    assert.equal(c.compute_dtype, 'auto');
    assert.equal(c.trust_remote_code, false);
    assert.equal(c.max_length, 1024);
    assert.equal(c.loss_on, 'response');
    assert.equal(c.packing, false);
    assert.deepEqual(c.lora, { r: 32, alpha: 32, dropout: 0.05, target_modules: ['q_proj', 'k_proj', 'v_proj', 'dense'] });
    assert.equal(c.data.validation, null);
    assert.equal(c.data.test, null);
    assert.equal(c.data.validation_split, 0.05);
    assert.equal(c.train.max_steps, 1000);
    assert.equal(c.train.learning_rate, 0.0002);
    assert.equal(c.train.optimizer, 'adamw_torch_fused');
    assert.equal(c.train.gradient_checkpointing, 'auto');
    assert.equal(c.train.token_batching, true);
    assert.equal(c.train.tokens_per_pass, 'auto');
    assert.equal(c.train.compile, 'auto');
    assert.equal(c.train.keep_checkpoints, 3);
    assert.equal(c.train.seed, 42);
  });

  it('keeps given values and fills the rest of a partly given section', () => {
    const result = load(`${minimal}lora: { r: 8 }\ntrain:\n  learning_rate: 1.0e-3\n`);
    assert.ok(result.ok);
    assert.equal(result.config.lora.r, 8);
    assert.equal(result.config.lora.alpha, 32);
    assert.equal(result.config.train.learning_rate, 0.001);
    assert.equal(result.config.train.gradient_accumulation, 4);
  });

  it("resolves data, template and a local model relative to the config's folder, not the cwd", () => {
    const result = load(minimal.replace('data/train.jsonl', './data/train.jsonl'));
    assert.ok(result.ok);
    assert.equal(result.config.model, path.join(dir, 'models', 'tiny'));
    assert.equal(result.config.data.train, path.join(dir, 'data', 'train.jsonl'));
    assert.equal(result.config.template, path.join(dir, 'prompt.yaml'));
    assert.ok(path.isAbsolute(result.config.data.train));
  });

  it('resolves data.format: the prompt template when one is set, else the first record\'s chat format', () => {
    const templated = load(minimal);
    assert.ok(templated.ok);
    assert.equal(templated.config.data.format, 'template');
    assert.equal(templated.config.chat_template, null);
    const chat = load(`model: ./models/tiny\ndata: { train: data/chat.jsonl }\nchat_template: prompt.yaml\n`);
    assert.ok(chat.ok, JSON.stringify(!chat.ok && chat.errors.map((e) => e.format())));
    assert.equal(chat.config.data.format, 'sharegpt');
    assert.equal(chat.config.template, null);
    assert.equal(chat.config.chat_template, path.join(dir, 'prompt.yaml'));
    for (const sample of ['smollm2.yaml', 'tiny.yaml']) {
      const result = loadConfig(path.join(repo, 'samples', 'chat', sample));
      assert.ok(result.ok, JSON.stringify(!result.ok && result.errors.map((e) => e.format())));
      assert.equal(result.config.data.format, sample === 'tiny.yaml' ? 'sharegpt' : 'messages');
    }
  });

  it('treats a model that is not path-like and not a folder as a hub id', () => {
    const result = load(minimal.replace('./models/tiny', 'microsoft/phi-2'));
    assert.ok(result.ok);
    assert.equal(result.config.model, 'microsoft/phi-2');
  });

  it('takes a bare model name that exists beside the config as a local folder', () => {
    const result = load(minimal.replace('./models/tiny', 'models/tiny'));
    assert.ok(result.ok);
    assert.equal(result.config.model, path.join(dir, 'models', 'tiny'));
  });

  it('loads the samples (tiny.yaml resolves to samples/models/tiny-phi)', () => {
    const result = loadConfig(path.join(repo, 'samples', 'dialogsum', 'tiny.yaml'));
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors.map((e) => e.format())));
    assert.equal(result.config.model, path.join(repo, 'samples', 'models', 'tiny-phi'));
    assert.equal(result.config.data.validation, path.join(repo, 'samples', 'dialogsum', 'validation.jsonl'));
    assert.equal(result.config.train.max_steps, 80);
    assert.equal(result.config.train.best_metric, 'rouge1');
    assert.deepEqual(result.config.eval, { references: null, max_new_tokens: 48, batch_size: 8 });
    const phi2 = loadConfig(path.join(repo, 'samples', 'dialogsum', 'phi-2.yaml'));
    assert.ok(phi2.ok);
    assert.equal(phi2.config.model, 'microsoft/phi-2');
  });

  it('applies overrides after validation and validates them', () => {
    const file = path.join(dir, 'finetune.yaml');
    fs.writeFileSync(file, minimal);
    const ok = loadConfig(file, { overrides: [{ field: 'train.max_steps', value: 5, flag: '--max-steps' }] });
    assert.ok(ok.ok);
    assert.equal(ok.config.train.max_steps, 5);
    for (const [raw, message] of [
      ['0', 'must be >= 1 (got 0)'],
      ['2.5', 'must be an integer (got 2.5)'],
      ['ten', 'must be an integer (got "ten")'],
    ] as const) {
      const bad = loadConfig(file, { overrides: [{ field: 'train.max_steps', value: parseOverrideNumber(raw), flag: '--max-steps' }] });
      assert.ok(!bad.ok);
      assert.equal(bad.errors[0]!.format(dir), `--max-steps train.max_steps: ${message}`);
    }
  });

  it('round-trips a resolved config through config.yaml in schema order', () => {
    const result = load(minimal);
    assert.ok(result.ok);
    const text = configToYaml(result.config, 'as run');
    assert.match(text, /^# as run\nmodel: /);
    assert.deepEqual(Object.keys(parse(text) as object).slice(0, 3), ['model', 'trust_remote_code', 'quantization']);
    fs.writeFileSync(path.join(dir, 'saved.yaml'), text);
    const again = loadConfig(path.join(dir, 'saved.yaml'));
    assert.ok(again.ok);
    assert.deepEqual(again.config, result.config);
  });

  it('classifies path-like model values', () => {
    for (const v of ['./m', '../m', '/abs/m', '~/m', '~', '.', 'C:\\models\\phi', '.\\m']) assert.ok(isPathLike(v), v);
    for (const v of ['microsoft/phi-2', 'phi-2', 'org/name']) assert.ok(!isPathLike(v), v);
  });
});

describe('config: errors name file, line, column and field', () => {
  // [what, yaml, expected formatted errors (relative to the temp folder)]
  const cases: [string, string, string[]][] = [
    [
      'negative learning rate',
      `${minimal}train:\n  max_steps: 10\n  learning_rate: -0.001\n`,
      ['finetune.yaml:7:18 train.learning_rate: must be > 0 (got -0.001)'],
    ],
    [
      'unknown key, with a suggestion',
      `${minimal}train:\n  learnin_rate: 0.1\n`,
      ['finetune.yaml:6:3 train.learnin_rate: unknown key "learnin_rate"; did you mean "learning_rate"?'],
    ],
    [
      'unknown top-level key',
      `epochs: 3\n${minimal}`,
      ['finetune.yaml:1:1 epochs: unknown key "epochs"; expected one of: model, trust_remote_code, quantization, double_quant, compute_dtype, lora, data, template, chat_template, max_length, loss_on, packing, train'],
    ],
    ['wrong type', `${minimal}max_length: long\n`, ['finetune.yaml:5:13 max_length: must be an integer (got "long")']],
    ['wrong type in a flow mapping', `${minimal}lora: { r: 8, dropout: "high" }\n`, ['finetune.yaml:5:24 lora.dropout: must be a number (got "high")']],
    ['auto-or-number given another word', `${minimal}train: { micro_batch_size: many }\n`, ['finetune.yaml:5:28 train.micro_batch_size: must be "auto" or an integer (got "many")']],
    ['auto-or-bool given a number', `${minimal}train: { gradient_checkpointing: 2.5 }\n`, ['finetune.yaml:5:34 train.gradient_checkpointing: must be "auto" or true or false (got 2.5)']],
    ['wrong enum value', `${minimal}quantization: nf5\n`, ['finetune.yaml:5:15 quantization: must be one of: nf4, fp4, int8, none (got "nf5")']],
    ['a list item', `${minimal}lora:\n  target_modules: [q_proj, ""]\n`, ['finetune.yaml:6:28 lora.target_modules[1]: must NOT have fewer than 1 characters (got "")']],
    [
      'missing required keys point at their parent mapping',
      'data:\n  validation: data/val.jsonl\n',
      [
        'finetune.yaml:1:1 model: is required but missing',
        'finetune.yaml:2:3 data.train: is required but missing',
      ],
    ],
    [
      'missing data file',
      minimal.replace('data/train.jsonl', 'data/nope.jsonl'),
      [`finetune.yaml:3:10 data.train: file not found: ${path.join('<dir>', 'data', 'nope.jsonl')}`],
    ],
    [
      'missing template',
      minimal.replace('prompt.yaml', 'missing.prompt.yaml'),
      [`finetune.yaml:4:11 template: file not found: ${path.join('<dir>', 'missing.prompt.yaml')}`],
    ],
    [
      'a data path that is a folder',
      `${minimal}`.replace('data/train.jsonl', 'data'),
      [`finetune.yaml:3:10 data.train: is a folder, not a file: ${path.join('<dir>', 'data')}`],
    ],
    [
      'nonexistent model folder',
      minimal.replace('./models/tiny', './models/huge'),
      [`finetune.yaml:1:8 model: model folder not found: ${path.join('<dir>', 'models', 'huge')} (a hub id looks like microsoft/phi-2)`],
    ],
    [
      'a data file whose format cannot be told, without a template',
      minimal.replace('template: prompt.yaml\n', ''),
      ['finetune.yaml:3:3 data.format: cannot tell the format of train.jsonl: its first record has dialogue, summary. Give a prompt template (template:) or name a chat format in data.format (messages, sharegpt, alpaca).'],
    ],
    [
      'a prompt template with a chat format',
      minimal.replace('  train: data/train.jsonl\n', '  train: data/train.jsonl\n  format: messages\n'),
      ["finetune.yaml:5:11 template: is a prompt template, which data.format messages does not use: chat records are rendered by the chat template (the model's own, or chat_template:). Remove one of the two."],
    ],
    [
      'a chat template with a prompt template',
      `${minimal}chat_template: prompt.yaml\n`,
      ['finetune.yaml:5:16 chat_template: renders chat datasets; this config uses the prompt template instead. Remove chat_template, or template to train on chat records.'],
    ],
    [
      'eval.references with chat data',
      `model: ./models/tiny\ndata: { train: data/chat.jsonl }\neval: { references: [summary] }\n`,
      ['finetune.yaml:3:21 eval.references: names record fields for prompt templates; chat records are scored against their last assistant turn. Remove eval.references.'],
    ],
    ['YAML syntax error', `${minimal}train: [1\n`, ['finetune.yaml:6:1: YAML: ']],
    ['duplicate key', `${minimal}max_length: 1\nmax_length: 2\n`, ['finetune.yaml:6:1: YAML: Map keys must be unique']],
    ['not a mapping', '- a\n- b\n', ['finetune.yaml:1:1: the config must be a mapping with at least model and data (and template, unless the data is a chat format)']],
  ];

  for (const [what, text, expected] of cases) {
    it(what, () => {
      const formatted = errorsOf(text).map((e) => e.format(dir).replaceAll(dir, '<dir>'));
      assert.equal(formatted.length, expected.length, formatted.join('\n'));
      expected.forEach((line, i) => assert.ok(formatted[i]!.startsWith(line), `got:  ${formatted[i]}\nwant: ${line}`));
    });
  }

  it('reports every schema error at once, in file order', () => {
    const errors = errorsOf(`${minimal}quantization: nf5\ntrain:\n  learning_rate: -1\n  warmup_steps: -2\n`);
    assert.deepEqual(
      errors.map((e) => [e.line, e.field]),
      [
        [5, 'quantization'],
        [7, 'train.learning_rate'],
        [8, 'train.warmup_steps'],
      ],
    );
    for (const e of errors) assert.equal(e.file, path.join(dir, 'finetune.yaml'));
  });

  it('reports a config file that does not exist', () => {
    const result = loadConfig(path.join(dir, 'absent.yaml'));
    assert.ok(!result.ok);
    assert.equal(result.errors[0]!.format(dir), 'absent.yaml: cannot read the config: file not found');
  });

  it('checks an unsaved buffer (loadConfigText) against its file location', () => {
    const result = loadConfigText(minimal, path.join(dir, 'unsaved.yaml'));
    assert.ok(result.ok);
    assert.equal(result.config.template, path.join(dir, 'prompt.yaml'));
  });

  it('shows paths outside the cwd as absolute', () => {
    const [error] = errorsOf(`${minimal}quantization: nf5\n`);
    assert.equal(error!.format('/somewhere/else').split(' ')[0], `${path.join(dir, 'finetune.yaml')}:5:15`);
  });
});
