/**
 * `qlora-studio summarize` against the fake engine: a text from a file or stdin bound to the run's template and sent
 * as Summarize Selection sends it, streamed on a terminal, --base, --json, the base model's download and Ctrl-C, and
 * the errors that name what is wrong. eval-engine.test.ts summarizes with the real engine through the same core.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../server/src/cli/main';
import { settledText } from '../../server/src/cli/summarize-view';
import type { EngineSupervisor } from '../../server/src/engine-client/supervise';
import { cliContext, completedRun, fakeSupervisor, tempDir, waitFor } from '../support/helpers';

const DIALOGUE = '#Person1#: Are you coming tonight?\n#Person2#: Yes, at eight.';

let work: string;
let engine: EngineSupervisor;
/** The generate requests the fake engine logged: records, maxNewTokens, temperature, alsoBase. */
const requests: Record<string, unknown>[] = [];

before(() => {
  work = tempDir('qlora-cli-summarize-');
  completedRun(path.join(work, 'runs'), 'r1');
  fs.writeFileSync(path.join(work, 'dialogue.txt'), `\uFEFF${DIALOGUE}\n\n`);
  fs.writeFileSync(path.join(work, 'empty.txt'), ' \n');
  engine = fakeSupervisor({}, { FAKE_ENGINE_STEP_MS: '5' });
  engine.onStderr((line) => {
    const logged = /^fake engine: generate (.*)$/.exec(line);
    if (logged) requests.push(JSON.parse(logged[1]!) as Record<string, unknown>);
  });
});
after(async () => {
  await engine.shutdown();
  fs.rmSync(work, { recursive: true, force: true });
});

/** The engine's log (stderr) may come after its answer (stdout): wait for `count` requests. */
const logged = (count: number): Promise<void> => waitFor(() => requests.length >= count, 2000, `${count} generate requests in the engine log`);

const adapter = (): string => path.join(work, 'runs', 'r1', 'adapter');

async function summarize(args: string[], options: { stdin?: string; tty?: boolean; supervisor?: EngineSupervisor } = {}) {
  const run = cliContext(work, options.supervisor ?? engine);
  run.ctx.stdin = options.stdin === undefined ? Object.assign(Readable.from([]), { isTTY: true }) : Readable.from([Buffer.from(options.stdin)]);
  const writes: string[] = [];
  if (options.tty) {
    Object.assign(run.stdout, { isTTY: true });
    const write = run.stdout.write.bind(run.stdout);
    run.stdout.write = (text: string) => (writes.push(text), write(text));
  }
  const code = await runCli(['summarize', ...args], run.ctx);
  return { code, stdout: run.stdout.text, stderr: run.stderr.text, writes };
}

/** The prompt the DialogSum template makes of DIALOGUE: what the engine must be asked, as the editor asks it. */
const PROMPT = `Instruct: Summarize the following conversation.\n${DIALOGUE}\nOutput:\n`;

describe('cli summarize (fake engine)', () => {
  it('summarizes a file with the run config: the summary alone on stdout, what was done on stderr', async () => {
    requests.length = 0;
    const r = await summarize(['--adapter', adapter(), '--file', 'dialogue.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'summary 0 of adapter\n');
    assert.match(r.stderr, /^Summarizing dialogue\.txt with runs\/r1\/adapter \(greedy, at most 100 new tokens\)\n3 new tokens, generated in 0\.01 s \([\d.]+ s in all\)\n$/);
    // The BOM and the file's trailing newlines are not part of the dialogue; eval.max_new_tokens is the default.
    await logged(1);
    assert.deepEqual(requests, [{ records: [{ dialogue: DIALOGUE }], maxNewTokens: 100, temperature: 0, alsoBase: false }]);
  });

  it('reads stdin (`-`, or piped) and streams the summary on a terminal, a settled word at a time', async () => {
    requests.length = 0;
    const config = path.join(work, 'runs', 'r1', 'config.yaml');
    const r = await summarize([config, '--adapter', path.join(work, 'runs', 'r1'), '-', '--max-new-tokens', '20', '--temperature', '0.7'], { stdin: `${DIALOGUE}\n`, tty: true });
    assert.equal(r.code, 0, r.stderr);
    // Each update shows its text up to the last whole word; the last one (done) shows the rest.
    assert.deepEqual(r.writes, ['summary', ' 0', ' of adapter', '\n']);
    assert.match(r.stderr, /^Summarizing stdin with runs\/r1\/adapter \(temperature 0\.7, seed 42, at most 20 new tokens\)\n/);
    const piped = await summarize(['--adapter', adapter()], { stdin: DIALOGUE });
    const named = await summarize(['--adapter', adapter(), '--file', '-'], { stdin: DIALOGUE });
    assert.equal(named.stdout, piped.stdout, named.stderr);
    assert.equal(piped.stdout, 'summary 0 of adapter\n', piped.stderr);
    await logged(3);
    assert.deepEqual(requests, [
      { records: [{ dialogue: DIALOGUE }], maxNewTokens: 20, temperature: 0.7, alsoBase: false },
      { records: [{ dialogue: DIALOGUE }], maxNewTokens: 100, temperature: 0, alsoBase: false },
      { records: [{ dialogue: DIALOGUE }], maxNewTokens: 100, temperature: 0, alsoBase: false },
    ]);
  });

  it('--base prints the zero-shot base model summary below the adapter one, from one request', async () => {
    requests.length = 0;
    const r = await summarize(['--adapter', adapter(), '--file', 'dialogue.txt', '--base'], { tty: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Adapter (runs/r1/adapter):\nsummary 0 of adapter\n\nBase model (zero-shot):\nsummary 0 of base\n');
    assert.match(r.stderr, /^3 new tokens; the base model's 3, generated in /m);
    await logged(1);
    assert.equal(requests[0]!.alsoBase, true);
  });

  it('--json prints one object: both summaries, the prompt, tokens and timings', async () => {
    const r = await summarize(['--adapter', adapter(), '--file', 'dialogue.txt', '--base', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1);
    const out = JSON.parse(lines[0]!) as Record<string, unknown>;
    const { timings, ...rest } = out as { timings: { generateSeconds: number; totalSeconds: number } };
    assert.deepEqual(rest, {
      config: path.join(work, 'runs', 'r1', 'config.yaml'),
      adapter: adapter(),
      input: path.join(work, 'dialogue.txt'),
      variable: 'dialogue',
      prompt: PROMPT,
      maxNewTokens: 100,
      temperature: 0,
      summary: 'summary 0 of adapter',
      baseSummary: 'summary 0 of base',
      tokens: { prompt: 10, summary: 3, baseSummary: 3 },
    });
    assert.equal(timings.generateSeconds, 0.01);
    assert.ok(timings.totalSeconds > 0 && timings.totalSeconds < 10, JSON.stringify(timings));
    const single = JSON.parse((await summarize(['--adapter', adapter(), '--file', 'dialogue.txt', '--json'])).stdout) as Record<string, unknown>;
    assert.equal('baseSummary' in single, false);
    assert.deepEqual(single.tokens, { prompt: 10, summary: 3 });
  });

  it('says which file or field is wrong, exit 2: a missing adapter, an empty input, a config error, no input', async () => {
    const missing = await summarize(['--adapter', 'runs/nope', '--file', 'dialogue.txt']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^runs\/nope --adapter: adapter folder not found: .*runs\/nope\n$/);
    fs.mkdirSync(path.join(work, 'runs', 'r2'));
    fs.writeFileSync(path.join(work, 'runs', 'r2', 'run.json'), '{}');
    const unfinished = await summarize(['--adapter', 'runs/r2', '--file', 'dialogue.txt']);
    assert.equal(unfinished.code, 2);
    assert.match(unfinished.stderr, /^runs\/r2 --adapter: run r2 has no complete adapter\/ \(did its training complete\?\)/);

    const empty = await summarize(['--adapter', adapter(), '--file', 'empty.txt', '--json']);
    assert.equal(empty.code, 2);
    assert.equal(empty.stderr, 'empty.txt --file: the file is empty: nothing to summarize\n');
    assert.deepEqual(JSON.parse(empty.stdout), { event: 'error', message: 'the file is empty: nothing to summarize', file: path.join(work, 'empty.txt'), field: '--file' });
    const noFile = await summarize(['--adapter', adapter(), '--file', 'gone.txt']);
    assert.equal(noFile.stderr, 'gone.txt --file: file not found\n');
    const emptyStdin = await summarize(['--adapter', adapter(), '-'], { stdin: '\n' });
    assert.equal(emptyStdin.code, 2);
    assert.match(emptyStdin.stderr, /^stdin is empty: nothing to summarize/);
    const terminal = await summarize(['--adapter', adapter()]);
    assert.equal(terminal.code, 2);
    assert.match(terminal.stderr, /give the text to summarize: --file <path>, or pipe it in/);

    const bad = path.join(work, 'bad.yaml');
    fs.writeFileSync(bad, 'model: ./runs/r1/model\ndata: { train: runs/r1/train.jsonl }\ntemplate: runs/r1/summarize.prompt.yaml\nlora: { r: -1 }\n');
    const config = await summarize([bad, '--adapter', adapter(), '--file', 'dialogue.txt']);
    assert.equal(config.code, 2);
    assert.match(config.stderr, /^bad\.yaml:4:\d+ lora\.r: /);
  });

  it('draws the base model download as pull does (stderr), and Ctrl-C during it exits 130 keeping the bytes', async () => {
    const downloads = fakeSupervisor({}, { FAKE_ENGINE_DOWNLOAD: '3', FAKE_ENGINE_STEP_MS: '5' });
    const run = cliContext(work, downloads);
    Object.assign(run.stderr, { isTTY: true, columns: 140 });
    const code = await runCli(['summarize', '--adapter', adapter(), '--file', 'dialogue.txt'], run.ctx);
    await downloads.shutdown();
    assert.equal(code, 0, run.stderr.text);
    const model = path.join(work, 'runs', 'r1', 'model');
    const bars = run.stderr.text.split('\r\x1b[2K').filter((b) => b.startsWith(model));
    assert.equal(bars.length, 3, run.stderr.text);
    assert.match(bars.at(-1)!, /100% {2}3\.00 MiB \/ 3\.00 MiB .*done {2}model\.safetensors\n3 new tokens, /);
    assert.equal(run.stdout.text, 'summary 0 of adapter\n');

    const slow = fakeSupervisor({}, { FAKE_ENGINE_DOWNLOAD: '200', FAKE_ENGINE_STEP_MS: '10' });
    const cancel = cliContext(work, slow);
    const done = runCli(['summarize', '--adapter', adapter(), '--file', 'dialogue.txt'], cancel.ctx);
    await waitFor(() => cancel.stderr.text.includes('MiB /'), 10_000, 'a download line');
    cancel.signals.interrupt();
    const cancelled = await done;
    await slow.shutdown();
    assert.equal(cancelled, 130, cancel.stderr.text);
    assert.match(cancel.stderr.text, /Cancelling\.\.\. \(Ctrl-C again stops the engine now\)\nCancelled\. [\d.]+ MiB of 200 MiB of .*model are kept in the Hugging Face cache; the next download resumes from there\.\n$/);
    assert.equal(cancel.stdout.text, '');
  });

  it('shows a growing text up to its last whole word, so what is shown is never taken back', () => {
    assert.deepEqual(
      ['', ' ', '\nThe', '\nThe cat', 'The cat sat ', 'The cat ###', 'The caf\uFFFD and'].map(settledText),
      ['', '', '', 'The', 'The cat sat', 'The cat', 'The'],
    );
  });

  it('is listed in --help, with its own help', async () => {
    assert.match((await summarize(['--help'])).stdout, /^Usage: qlora-studio summarize \[<config\.yaml>\] --adapter/);
    const run = cliContext(work, engine);
    assert.equal(await runCli(['--help'], run.ctx), 0);
    assert.match(run.stdout.text, /^ {2}summarize +summarize a text \(a file or stdin\) with an adapter$/m);
  });
});
