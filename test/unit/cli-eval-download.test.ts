/**
 * `qlora-studio eval` while the base model downloads, against the fake engine (FAKE_ENGINE_DOWNLOAD): the download drawn
 * as `pull` draws it, and Ctrl-C stopping it. cli-pull.test.ts does the same against the real engine and a local hub.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../server/src/cli/main';
import { ProgressLine } from '../../server/src/cli/output';
import { Captured, cliContext, completedRun, fakeSupervisor, tempDir, waitFor } from '../support/helpers';

describe('cli: eval while the base model downloads (fake engine)', () => {
  const MiB = 2 ** 20;
  let work: string;
  before(() => {
    work = tempDir('qlora-cli-download-');
    completedRun(path.join(work, 'runs'), 'r1');
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));
  const adapter = (): string => path.join(work, 'runs', 'r1', 'adapter');

  it('draws the download as pull does (a bar on a TTY), then the evaluation below it', async () => {
    const supervisor = fakeSupervisor({}, { FAKE_ENGINE_DOWNLOAD: '4', FAKE_ENGINE_STEP_MS: '10' });
    const run = cliContext(work, supervisor);
    Object.assign(run.stdout, { isTTY: true, columns: 140 });
    const code = await runCli(['eval', '--adapter', adapter(), '--limit', '2'], run.ctx);
    await supervisor.shutdown();
    assert.equal(code, 0, run.stderr.text);
    const model = path.join(work, 'runs', 'r1', 'model');
    const bars = run.stdout.text.split('\r\x1b[2K').filter(Boolean);
    const downloads = bars.filter((b) => b.startsWith(model));
    assert.equal(downloads.length, 4, run.stdout.text);
    // The bar `pull` draws (ProgressLine.download), the last one left on screen, the evaluation's below it.
    const pulled = new Captured(true, 140);
    new ProgressLine(pulled).download({ model, file: 'model.safetensors', bytesDone: 4 * MiB, bytesTotal: 4 * MiB, bytesPerSecond: 100 * MiB, filesDone: 2, filesTotal: 2 });
    assert.equal(`\r\x1b[2K${downloads.at(-1)}`, `${pulled.text}\n`);
    assert.match(pulled.text, /100% {2}4\.00 MiB \/ 4\.00 MiB {2}100 MiB\/s {2}done {2}model\.safetensors$/);
    assert.ok(bars[bars.indexOf(downloads.at(-1)!) + 1]!.startsWith('base (zero-shot) '), 'the evaluation bar goes on below the download');
    assert.match(run.stdout.text, /rouge1/);
  });

  it('Ctrl-C while it downloads stops it at once (exit 130) and says the bytes are kept', async () => {
    fs.rmSync(path.join(work, 'runs', 'r1', 'eval'), { recursive: true, force: true }); // the last test's report
    const supervisor = fakeSupervisor({}, { FAKE_ENGINE_DOWNLOAD: '200', FAKE_ENGINE_STEP_MS: '20' });
    const run = cliContext(work, supervisor);
    const done = runCli(['eval', '--adapter', adapter(), '--limit', '2'], run.ctx);
    await waitFor(() => run.stdout.text.includes('MiB /'), 10_000, 'a download line');
    run.signals.interrupt();
    const code = await done;
    await supervisor.shutdown();
    assert.equal(code, 130, run.stderr.text);
    assert.match(run.stderr.text, /^Cancelled; no report written\. [\d.]+ MiB of 200 MiB of .*model are kept in the Hugging Face cache; the next download resumes from there\.\n$/);
    assert.ok(!fs.existsSync(path.join(work, 'runs', 'r1', 'eval', 'report.json')));
  });
});
