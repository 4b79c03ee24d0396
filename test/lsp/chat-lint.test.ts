/**
 * Chat datasets in the editor, through the real server over streams: the chat samples lint clean with their
 * configs, hover shows a conversation as its chat template renders it with the trained spans marked, the lens
 * names the format, and an unknown ShareGPT role written as another tool names it has a quick fix.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadChatTemplate, toTurns } from '../../server/src/templates/chat';
import { loadTokenizer } from '../../server/src/tokenizer/load';
import { fixtures, LspClient, repo, summary } from './harness';

const clients: LspClient[] = [];
after(() => clients.forEach((c) => c.dispose()));

const chat = path.join(repo, 'samples', 'chat');
const smollm2 = path.join(repo, 'samples', 'models', 'smollm2-135m-instruct');

async function start(root: string): Promise<LspClient> {
  const client = await LspClient.start(root);
  clients.push(client);
  return client;
}

describe('the chat samples', () => {
  const cases: [root: string, files: string[]][] = [
    [chat, ['smollm2.yaml', 'messages.jsonl', 'messages.validation.jsonl', 'tiny.yaml', 'sharegpt.jsonl', 'sharegpt.validation.jsonl']],
    // No sample config names the alpaca files: this fixture's config does, with SmolLM2's own template.
    [path.join(fixtures, 'chat-alpaca-sample'), ['finetune.yaml', path.join(chat, 'alpaca.jsonl'), path.join(chat, 'alpaca.validation.jsonl')]],
  ];
  for (const [root, files] of cases) {
    for (const name of files) {
      test(`${path.relative(repo, path.resolve(root, name))} has no diagnostics with its config`, async () => {
        const client = await start(root);
        const uri = await client.open(path.resolve(root, name));
        assert.deepEqual(summary(await client.diagnostics(uri)), []);
      });
    }
  }

  test('the lens names the format, and says when it was detected', async () => {
    const client = await start(chat);
    const messages = await client.open(path.join(chat, 'messages.jsonl'));
    const sharegpt = await client.open(path.join(chat, 'sharegpt.jsonl'));
    await client.diagnostics(messages);
    await client.diagnostics(sharegpt);
    assert.match((await client.codeLens(messages))![0]!.command!.title, /^120 records · messages chat format · median \d+ tokens · p95 \d+ · \d+ over max_length 384 · 0 duplicates$/);
    assert.match((await client.codeLens(sharegpt))![0]!.command!.title, /^120 records · sharegpt chat format \(detected\) · median \d+ tokens · p95 \d+ · \d+ over max_length 512 · 0 duplicates$/);
  });
});

describe('hover on a chat record', () => {
  test("tokens against max_length, trained tokens, and the conversation with each assistant turn's span marked", async () => {
    const client = await start(chat);
    const file = path.join(chat, 'messages.jsonl');
    const uri = await client.open(file);
    await client.diagnostics(uri);
    // Line 3 has two exchanges (every third sample record asks for the topic as well).
    const record = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[2]!);
    const template = loadChatTemplate(null, smollm2);
    const tok = await loadTokenizer(smollm2, repo);
    assert.ok(template.ok && tok.ok);
    const segments = template.template.segments(toTurns(record, 'messages').turns);
    assert.equal(segments.filter((s) => s.trained).length, 2);
    const total = segments.reduce((n, s) => n + tok.tokenizer.count(s.text), 0);
    const trained = segments.filter((s) => s.trained).reduce((n, s) => n + tok.tokenizer.count(s.text), 0);
    const shown = segments.map((s) => (s.trained ? `⟦${s.text}⟧` : s.text)).join('');

    const text = ((await client.hover(uri, 2, 5))!.contents as { value: string }).value;
    assert.match(text, new RegExp(`^\\*\\*Record 3\\*\\*: ${total} tokens of max_length 384\\s`));
    assert.ok(text.includes(`5 turns (messages) · ${trained} tokens trained (\`loss_on: response\`)`), text);
    assert.ok(text.includes(`\`\`\`text\n${shown}\n\`\`\``), text);
    // Each span is the assistant's content and the template's end-of-turn marker, without the newline after it.
    assert.equal(shown.match(/<\|im_end\|>⟧\n/g)?.length, 2, shown);
  });

  test('a record that is not a valid conversation says why', async () => {
    const client = await start(path.join(fixtures, 'chat-turn-order'));
    const uri = await client.open(path.join(fixtures, 'chat-turn-order', 'train.jsonl'));
    await client.diagnostics(uri);
    const text = ((await client.hover(uri, 0, 5))!.contents as { value: string }).value;
    assert.equal(text, '**Record 1** — not a valid messages conversation: messages[1].role: a user turn follows a user turn: user and assistant turns alternate');
  });
});

describe('quick fixes on chat records', () => {
  test('an unknown ShareGPT role that another tool writes for the same speaker is renamed; others have no fix', async () => {
    const root = path.join(fixtures, 'chat-unknown-role');
    const client = await start(root);
    const uri = await client.open(path.join(root, 'train.jsonl'));
    const diagnostics = await client.diagnostics(uri);
    const on = (line: number) => diagnostics.find((d) => d.range.start.line === line)!;
    const fixes = async (line: number) => (await client.codeActions(uri, on(line).range, [on(line)])).map((a) => [a.title, a.edit!.changes![uri]]);
    assert.deepEqual(await fixes(1), [['Rename role "bot" to "gpt"', [{ range: on(1).range, newText: '"gpt"' }]]]);
    assert.deepEqual(await fixes(2), [['Rename role "Human" to "human"', [{ range: on(2).range, newText: '"human"' }]]]);
    assert.deepEqual(await fixes(3), []);
    const version = await client.change(uri, [{ range: on(1).range, text: '"gpt"' }]);
    assert.deepEqual(summary(await client.diagnostics(uri, { version })).map((d) => d[1]), [2, 3]);
  });
});
