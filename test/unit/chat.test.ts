/** Chat datasets (server/src/templates/chat.ts): formats, turn checks, template loading, segments, prompt, stop. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectFormat, loadChatTemplate, toTurns, type ChatTemplate, type Turn } from '../../server/src/templates/chat';
import { repo, tempDir } from '../support/helpers';

const smollm2 = path.join(repo, 'samples', 'models', 'smollm2-135m-instruct');
const tinyPhi = path.join(repo, 'samples', 'models', 'tiny-phi');
const chatml = path.join(repo, 'samples', 'chat', 'chatml.jinja');

function loaded(explicit: string | null, folder: string | null): ChatTemplate {
  const result = loadChatTemplate(explicit, folder);
  assert.ok(result.ok, result.ok ? '' : result.message);
  return result.template;
}

const kinds = (record: Record<string, unknown>, format: Parameters<typeof toTurns>[1]): string[][] => toTurns(record, format).problems.map((p) => [p.kind, p.field]);

describe('detectFormat', () => {
  it('reads the format off the keys, in the spec order', () => {
    assert.equal(detectFormat({ messages: [] }), 'messages');
    assert.equal(detectFormat({ conversations: [], system: 'x' }), 'sharegpt');
    assert.equal(detectFormat({ instruction: 'a', output: 'b' }), 'alpaca');
    assert.equal(detectFormat({ instruction: 'a' }), null);
    assert.equal(detectFormat({ dialogue: 'a', summary: 'b' }), null);
  });
});

describe('toTurns', () => {
  it('messages: role and content only, other keys ignored', () => {
    const { turns, problems } = toTurns({ messages: [{ role: 'user', content: 'a', name: 'x' }, { content: 'b', role: 'assistant' }] }, 'messages');
    assert.deepEqual(problems, []);
    assert.deepEqual(turns, [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }]);
    assert.deepEqual(Object.keys(turns[1]!), ['role', 'content']);
  });

  it('sharegpt: roles mapped, the top-level system first unless the conversation has one', () => {
    const conversations = [{ from: 'human', value: 'a' }, { from: 'gpt', value: 'b' }, { from: 'user', value: 'c' }, { from: 'assistant', value: 'd' }];
    assert.deepEqual(toTurns({ system: 'S', conversations }, 'sharegpt').turns.map((t) => t.role), ['system', 'user', 'assistant', 'user', 'assistant']);
    assert.equal(toTurns({ system: '', conversations }, 'sharegpt').turns[0]!.role, 'user');
    const own = toTurns({ system: 'S', conversations: [{ from: 'system', value: 'T' }, ...conversations] }, 'sharegpt');
    assert.deepEqual(own.problems, []);
    assert.deepEqual(own.turns[0], { role: 'system', content: 'T' });
  });

  it('alpaca: instruction and input joined by a newline when input is non-empty', () => {
    assert.deepEqual(toTurns({ system: 'S', instruction: 'I', input: 'X', output: 'O' }, 'alpaca').turns, [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'I\nX' },
      { role: 'assistant', content: 'O' },
    ]);
    assert.deepEqual(toTurns({ instruction: 'I', input: '', output: 'O' }, 'alpaca').turns, [{ role: 'user', content: 'I' }, { role: 'assistant', content: 'O' }]);
  });

  it('structure: the turn list missing, not a list or empty; a turn not an object; alpaca fields of the wrong type', () => {
    assert.deepEqual(kinds({}, 'messages'), [['structure', 'messages']]);
    assert.deepEqual(kinds({ conversations: 'hi' }, 'sharegpt'), [['structure', 'conversations']]);
    assert.deepEqual(kinds({ messages: [] }, 'messages'), [['structure', 'messages']]);
    assert.deepEqual(kinds({ messages: [{ role: 'user', content: 'a' }, 'b'] }, 'messages'), [['structure', 'messages[1]']]);
    assert.deepEqual(kinds({ instruction: 'I', input: 3, output: 'O' }, 'alpaca'), [['structure', 'input']]);
    assert.deepEqual(kinds({ instruction: 'I', output: ['O'] }, 'alpaca'), [['structure', 'output']]);
    assert.deepEqual(kinds({ system: 1, conversations: [{ from: 'human', value: 'a' }, { from: 'gpt', value: 'b' }] }, 'sharegpt'), [['structure', 'system']]);
  });

  it('unknown role, on the role field (or the turn when it has none)', () => {
    assert.deepEqual(kinds({ conversations: [{ from: 'human', value: 'a' }, { from: 'bot', value: 'b' }] }, 'sharegpt'), [['unknown-role', 'conversations[1].from']]);
    assert.deepEqual(kinds({ messages: [{ role: 'user', content: 'a' }, { content: 'b' }] }, 'messages'), [['unknown-role', 'messages[1]']]);
    assert.deepEqual(kinds({ messages: [{ role: 'human', content: 'a' }, { role: 'assistant', content: 'b' }] }, 'messages'), [['unknown-role', 'messages[0].role']]);
  });

  it('empty turn: empty, whitespace, null or missing text', () => {
    assert.deepEqual(kinds({ messages: [{ role: 'user', content: ' \n' }, { role: 'assistant', content: 'b' }] }, 'messages'), [['empty-turn', 'messages[0].content']]);
    assert.deepEqual(kinds({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: null }] }, 'messages'), [['empty-turn', 'messages[1].content']]);
    assert.deepEqual(kinds({ conversations: [{ from: 'human' }, { from: 'gpt', value: 'b' }] }, 'sharegpt'), [['empty-turn', 'conversations[0]']]);
    assert.deepEqual(kinds({ instruction: '', input: 'X', output: 'O' }, 'alpaca'), [['empty-turn', 'instruction']]);
    assert.deepEqual(kinds({ instruction: 'I', output: '' }, 'alpaca'), [['empty-turn', 'output']]);
  });

  it('a blank system prompt is no system turn, as a null one is in ShareGPT (the engine agrees)', () => {
    assert.deepEqual(toTurns({ system: ' ', instruction: 'I', output: 'O' }, 'alpaca'), { turns: [{ role: 'user', content: 'I' }, { role: 'assistant', content: 'O' }], problems: [] });
    const conversations = [{ from: 'human', value: 'a' }, { from: 'gpt', value: 'b' }];
    assert.deepEqual(toTurns({ system: null, conversations }, 'sharegpt').problems, []);
    assert.deepEqual(kinds({ system: null, instruction: 'I', output: 'O' }, 'alpaca'), [['structure', 'system']]);
  });

  it('order: one system turn, first; user and assistant alternate from user; the assistant ends', () => {
    const m = (...roles: string[]) => ({ messages: roles.map((role) => ({ role, content: 'x' })) });
    assert.deepEqual(kinds(m('system', 'user', 'assistant', 'user', 'assistant'), 'messages'), []);
    assert.deepEqual(kinds(m('user', 'system', 'assistant'), 'messages'), [['order', 'messages[1].role']]);
    assert.deepEqual(kinds(m('user', 'user', 'assistant'), 'messages'), [['order', 'messages[1].role']]);
    assert.deepEqual(kinds(m('system', 'assistant'), 'messages'), [['order', 'messages[1].role']]);
    assert.deepEqual(kinds(m('user', 'assistant', 'assistant'), 'messages'), [['order', 'messages[2].role']]);
    assert.deepEqual(kinds(m('user', 'assistant', 'user'), 'messages'), [['no-assistant-end', 'messages[2].role']]);
    assert.deepEqual(kinds(m('system'), 'messages'), [['no-assistant-end', 'messages[0].role']]);
    // The top-level system of a ShareGPT record counts as the first turn.
    assert.deepEqual(kinds({ system: 'S', conversations: [{ from: 'gpt', value: 'b' }] }, 'sharegpt'), [['order', 'conversations[0].from']]);
  });

  it('messages name the field and say what to do', () => {
    const [problem] = toTurns({ conversations: [{ from: 'human', value: 'a' }, { from: 'bot', value: 'b' }] }, 'sharegpt').problems;
    assert.match(problem!.message, /^conversations\[1\]\.from "bot" is not a known role: use "system", "human", "user", "gpt", "assistant"$/);
  });
});

describe('loadChatTemplate', () => {
  let dir: string;
  before(() => {
    dir = tempDir('qlora-chat-');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const folder = (name: string, files: Record<string, string>): string => {
    const at = path.join(dir, name);
    fs.mkdirSync(at, { recursive: true });
    for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(at, file), text);
    return at;
  };

  it("takes the model folder's chat_template.jinja, with its special tokens", () => {
    const t = loaded(null, smollm2);
    assert.equal(t.file, path.join(smollm2, 'chat_template.jinja'));
    const m = folder('tokens', { 'tokenizer_config.json': JSON.stringify({ bos_token: { content: '<s>' }, eos_token: '</s>', chat_template: '{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ pad_token is defined }}' }) });
    assert.equal(loaded(null, m).render([{ role: 'user', content: 'x' }], false), '<s>x</s>false');
  });

  it('falls back to tokenizer_config.json: a string, or the template named default of a list', () => {
    const list = folder('list', { 'tokenizer_config.json': JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] }) });
    assert.equal(loaded(null, list).render([], false), 'D');
    const none = folder('no-default', { 'tokenizer_config.json': JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }] }) });
    const result = loadChatTemplate(null, none);
    assert.ok(!result.ok && /lists chat templates "tool_use" but none named "default"/.test(result.message));
  });

  it('an explicit file wins; without a model folder there are no special tokens', () => {
    assert.equal(loaded(chatml, tinyPhi).file, chatml);
    const file = path.join(dir, 'bos.jinja');
    fs.writeFileSync(file, '{{ bos_token is defined }}');
    assert.equal(loaded(file, null).render([], false), 'false');
  });

  it('says what to do when there is none', () => {
    const result = loadChatTemplate(null, tinyPhi);
    assert.ok(!result.ok);
    assert.equal(result.message, `the model ${tinyPhi} has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json): set chat_template: in the config to a Jinja file, e.g. samples/chat/chatml.jinja`);
    const missing = loadChatTemplate(path.join(dir, 'nope.jinja'), null);
    assert.ok(!missing.ok && missing.message.startsWith(`cannot read the chat template ${path.join(dir, 'nope.jinja')} (ENOENT)`));
    const broken = path.join(dir, 'broken.jinja');
    fs.writeFileSync(broken, '{% for m in messages %}');
    const syntax = loadChatTemplate(broken, null);
    assert.ok(!syntax.ok && syntax.message.startsWith(`the chat template ${broken} is not valid Jinja`));
  });

  it("raise_exception's message reaches the error", () => {
    const file = path.join(dir, 'raise.jinja');
    fs.writeFileSync(file, "{% if messages[0].role != 'system' %}{{ raise_exception('a system turn comes first') }}{% endif %}");
    assert.throws(() => loaded(file, null).render([{ role: 'user', content: 'x' }], false), /raise.jinja fails on this conversation: a system turn comes first$/);
  });
});

describe('segments, prompt and stop', () => {
  const conversation: Turn[] = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello' },
    { role: 'user', content: 'Topic?' },
    { role: 'assistant', content: 'greetings' },
  ];

  it('ChatML: each assistant content and its <|im_end|> trained, the newline after it not', () => {
    const t = loaded(chatml, null);
    assert.deepEqual(t.segments(conversation), [
      { text: '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', trained: false },
      { text: 'Hello<|im_end|>', trained: true },
      { text: '\n<|im_start|>user\nTopic?<|im_end|>\n<|im_start|>assistant\n', trained: false },
      { text: 'greetings<|im_end|>', trained: true },
      { text: '\n', trained: false },
    ]);
    assert.equal(t.segments(conversation).map((s) => s.text).join(''), t.render(conversation, false));
    assert.deepEqual(t.stop, ['<|im_end|>']);
  });

  it('the prompt ends where the final assistant turn begins; a final user turn gets the generation prompt', () => {
    const t = loaded(null, smollm2);
    const prompt = t.prompt(conversation);
    assert.equal(prompt, t.render(conversation.slice(0, 3), true));
    assert.ok(prompt.startsWith('<|im_start|>system\nYou are a helpful AI assistant named SmolLM'));
    assert.ok(prompt.endsWith('<|im_start|>user\nTopic?<|im_end|>\n<|im_start|>assistant\n'));
    assert.equal(t.prompt([{ role: 'user', content: 'Sum this' }]), t.render([{ role: 'user', content: 'Sum this' }], true));
  });

  it('a template that rewrites earlier turns is refused, naming the file', () => {
    // Keeps only the last assistant turn's text, as templates that drop past reasoning do.
    const file = path.join(tempDir('qlora-chat-'), 'last-only.jinja');
    fs.writeFileSync(file, "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}[...]{% else %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endif %}{% endfor %}");
    assert.throws(() => loaded(file, null).segments(conversation), (e: Error) => e.message.includes(`the chat template ${file} is not prefix-stable`) && e.message.includes('set chat_template:'));
  });

  it('an assistant turn rendered as nothing is refused', () => {
    const file = path.join(tempDir('qlora-chat-'), 'users-only.jinja');
    fs.writeFileSync(file, "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}\n{% endif %}{% endfor %}");
    assert.throws(() => loaded(file, null).segments(conversation), /users-only.jinja renders no text for assistant turn 2/);
  });

  it('no end-of-turn marker: stop is empty', () => {
    const file = path.join(tempDir('qlora-chat-'), 'bare.jinja');
    fs.writeFileSync(file, '{% for m in messages %}{{ m.content }}\n{% endfor %}');
    assert.deepEqual(loaded(file, null).stop, []);
  });
});
