/**
 * End to end, in real VS Code (code-server) in headless Chromium: the packaged .vsix, a copy of samples/ as the
 * workspace. The walkthrough's Check Environment shows the GPU and the torch build; (a) the Problems panel lists a
 * broken JSONL's problems; (b) Fine-tune Phi-2 on a tiny CPU config ends completed and the dashboard's loss chart has
 * one point per logged step; (c) Summarize Selection with Adapter shows a summary beside the selection; (d) Evaluate
 * Adapter's report shows in the dashboard; Restricted Mode lints but refuses to train. A screenshot of each step in
 * test-results/e2e/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  artifacts,
  dashboardFrame,
  enginePython,
  launch,
  baseSettings,
  log,
  openFile,
  packageVsix,
  paletteRows,
  pickQuickItem,
  root,
  runCommand,
  screenshot,
  setupTools,
  waitFor,
  type Session,
  type Tools,
  vsixEntries,
} from './harness';

const MainCommands = [
  'Fine-tune Phi-2',
  'Summarize Selection with Adapter',
  'Evaluate Adapter',
  'Open Dashboard',
  'Cancel Run',
  'Resume Run',
  'Set Up Engine Environment',
  'Check Environment',
  'New Fine-tune Project from Sample',
];
const E2eSteps = 6;
/** Test records an evaluation scores in the e2e (qloraStudio.evaluate.limit). */
const EvalLimit = 3;

/** samples/ copied (models linked) plus the e2e inputs: a tiny CPU config, a broken JSONL, a dialogue. */
function makeWorkspace(): string {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-e2e-ws-'));
  fs.cpSync(path.join(root, 'samples', 'dialogsum'), path.join(ws, 'dialogsum'), { recursive: true });
  fs.symlinkSync(path.join(root, 'samples', 'models'), path.join(ws, 'models'));
  const tiny = fs.readFileSync(path.join(ws, 'dialogsum', 'tiny.yaml'), 'utf8');
  const e2e = tiny
    .replace(/max_steps:\s*\d+/, `max_steps: ${E2eSteps}`)
    .replace(/eval_every:\s*\d+/, 'eval_every: 3')
    .replace(/save_every:\s*\d+/, 'save_every: 3')
    .replace(/eval_batches:\s*\d+/, 'eval_batches: 2')
    .replace(/warmup_steps:\s*\d+/, 'warmup_steps: 1');
  fs.writeFileSync(path.join(ws, 'dialogsum', 'e2e-tiny.yaml'), `# e2e: the tiny random model, ${E2eSteps} steps\n${e2e}`);
  // The run a person looks at (dashboard, Summarize Selection, the evaluation report): the real SmolLM2 model.
  const smol = fs
    .readFileSync(path.join(ws, 'dialogsum', 'smollm2.yaml'), 'utf8')
    .replace(/max_steps:\s*\d+/, `max_steps: ${E2eSteps}`)
    .replace(/eval_every:\s*\d+/, 'eval_every: 3')
    .replace(/save_every:\s*\d+/, 'save_every: 3')
    .replace(/eval_batches:\s*\d+/, 'eval_batches: 2')
    .replace(/warmup_steps:\s*\d+/, 'warmup_steps: 1')
    .replace(/learning_rate:\s*\S+/, 'learning_rate: 2.0e-3');
  fs.writeFileSync(path.join(ws, 'dialogsum', 'e2e-smollm2.yaml'), `# e2e: the CPU demo's real model, ${E2eSteps} steps\n${smol}`);
  const records = fs.readFileSync(path.join(ws, 'dialogsum', 'validation.jsonl'), 'utf8').split('\n').filter(Boolean);
  const second = JSON.parse(records[1]!) as Record<string, unknown>;
  delete second.summary;
  fs.writeFileSync(path.join(ws, 'dialogsum', 'broken.jsonl'), [records[0], '{"fname": "bad", "dialogue": "#Person1#: hi", ', JSON.stringify(second), ''].join('\n'));
  // The linter checks a dataset against the template of the config that names it.
  fs.writeFileSync(path.join(ws, 'dialogsum', 'lint-check.yaml'), `# e2e: names broken.jsonl so the linter knows its template\n${tiny.replace(/train:\s*train\.jsonl/, 'train: broken.jsonl')}`);
  const dialogue = (JSON.parse(fs.readFileSync(path.join(ws, 'dialogsum', 'test.jsonl'), 'utf8').split('\n')[0]!) as { dialogue: string }).dialogue;
  fs.writeFileSync(path.join(ws, 'dialogsum', 'dialogue.txt'), dialogue + '\n');
  return ws;
}

/** Switches the color theme as a user does: Preferences: Color Theme, then the theme's name. */
async function setTheme(s: Session, theme: string): Promise<void> {
  try {
    await runCommand(s.page, 'Preferences: Color Theme');
    // The theme list replaces the command list; type once it shows.
    await s.page.locator('.quick-input-widget .monaco-list-row', { hasText: /Dark|Light/ }).first().waitFor({ timeout: 15_000 });
    await s.page.waitForTimeout(300);
    await s.page.keyboard.type(theme);
    const row = s.page.locator(`.quick-input-widget .monaco-list-row[aria-label^="${theme}"]`).first();
    await row.waitFor({ timeout: 15_000 });
    await row.click();
  } catch (error) {
    await screenshot(s.page, `theme-picker-${theme.replace(/\W+/g, '-')}`);
    throw error;
  }
}

/** Tools and the .vsix, prepared once for both sessions. */
let prepared: { tools: Tools; vsix: string } | null = null;
function prepare(): { tools: Tools; vsix: string } {
  if (prepared) return prepared;
  fs.rmSync(artifacts, { recursive: true, force: true });
  fs.mkdirSync(artifacts, { recursive: true });
  const started = Date.now();
  const tools = setupTools();
  log(`setup (Node 24, code-server, Chromium) took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const vsix = packageVsix();
  log(`packaged ${path.relative(root, vsix)} (${(fs.statSync(vsix).size / 1024).toFixed(0)} KiB)`);
  return (prepared = { tools, vsix });
}

describe('QLoRA Studio in code-server', { timeout: 25 * 60_000 }, () => {
  let session: Session;
  let workspace: string;

  /** A run made before VS Code opens (by the CLI, the same engine): the dashboard reads it from metrics.jsonl. */
  let pastRun: string;
  /** The run test (b) trains. */
  let trainedRun: string;

  before(async () => {
    const { tools, vsix } = prepare();
    workspace = makeWorkspace();
    const started = Date.now();
    const cli = spawnSync(
      process.execPath,
      [path.join(root, 'dist/cli.js'), 'train', path.join(workspace, 'dialogsum', 'e2e-tiny.yaml'), '--max-steps', '4', '--runs-dir', path.join(workspace, 'runs'), '--python', enginePython()],
      { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } },
    );
    assert.equal(cli.status, 0, `the CLI run failed:\n${cli.stdout}\n${cli.stderr}`);
    pastRun = fs.readdirSync(path.join(workspace, 'runs'))[0]!;
    log(`past run ${pastRun} (CLI, 4 steps) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    session = await launch(tools, vsix, workspace, { ...baseSettings, 'qloraStudio.pythonPath': enginePython(), 'qloraStudio.evaluate.limit': EvalLimit });
  });

  after(async () => {
    await session?.close();
    if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
  });

  test('the commands appear in the palette under "QLoRA Studio"', async () => {
    const rows = await paletteRows(session.page, 'QLoRA Studio: ');
    await screenshot(session.page, '0-palette');
    await session.page.keyboard.press('Escape');
    for (const title of MainCommands) {
      assert.ok(
        rows.some((r) => r.includes(`QLoRA Studio: ${title}`)),
        `palette lacks "QLoRA Studio: ${title}"; it shows:\n${rows.join('\n')}`,
      );
    }
  });

  test('the .vsix holds the bundles and the engine, and no dev files', () => {
    const names = vsixEntries(prepared!.vsix).filter((n) => n.startsWith('extension/')).map((n) => n.slice('extension/'.length));
    for (const required of ['package.json', 'dist/extension.js', 'dist/server.js', 'dist/webview.js', 'dist/webview.css', 'engine/qlora_engine/__main__.py', 'scripts/setup-engine.mjs', 'samples/dialogsum/train.jsonl']) {
      assert.ok(names.includes(required), `the .vsix lacks ${required}`);
    }
    const dev = names.filter((n) => /(^|\/)(node_modules|src|test|tests|bench|\.vscode|\.cache|\.venv|runs)\/|\.map$|\.ts$|tsconfig|esbuild\.mjs|__pycache__|\.vsix$/.test(n));
    assert.deepEqual(dev, [], 'dev files in the .vsix');
  });

  test('the walkthrough takes a new user from the sample to a first adapter', async () => {
    const page = session.page;
    await runCommand(page, 'Welcome: Open Walkthrough...');
    await pickQuickItem(page, 'Your first QLoRA adapter', 20_000);
    const steps = page.locator('.getting-started-step');
    await steps.first().waitFor({ timeout: 20_000 });
    const titles = await steps.evaluateAll((els) => els.map((e) => e.querySelector('.step-title')?.textContent?.trim() ?? ''));
    assert.deepEqual(titles.filter(Boolean), [
      'Check your GPU and engine',
      'Create a project from the sample',
      'Set up the engine',
      'Check the data and the template',
      'Fine-tune',
      'Watch it learn',
      'Summarize with your adapter',
    ]);
    await page.waitForTimeout(1500); // the step's markdown renders in its own webview
    await screenshot(page, '0b-walkthrough');
    // The first step's check: the engine's GPU and torch build in one notification, with one next action.
    await runCommand(page, 'QLoRA Studio: Check Environment');
    const toast = page.locator('.notification-toast', { hasText: 'NVIDIA driver' }).first();
    await toast.waitFor({ timeout: 120_000 });
    const text = (await toast.textContent()) ?? '';
    assert.match(text, /(no CUDA GPU|GiB free of [^)]+\)) · (no NVIDIA driver|NVIDIA driver [\d.]+) · torch \S+ \((CUDA [\d.]+|CPU build)\)/);
    assert.match(text, /Fine-tune Phi-2|New Fine-tune Project from Sample|Reinstall torch|Install bitsandbytes|Update NVIDIA Driver|Show Engine Log/, 'one next action');
    await page.waitForTimeout(800); // the toast's fade-in
    await screenshot(page, '0c-check-environment');
    await runCommand(page, 'Notifications: Clear All Notifications');
    await runCommand(page, 'View: Close All Editors');
  });

  test('(a) a JSONL with problems: the Problems panel lists them', async () => {
    const page = session.page;
    await openFile(page, 'broken.jsonl');
    await runCommand(page, 'View: Focus Problems');
    const rows = page.locator('.markers-panel .monaco-list-row');
    const texts = await waitFor(
      'the invalid JSON and the missing field in the Problems panel',
      async () => {
        const t = await rows.evaluateAll((els) => els.map((e) => e.textContent ?? ''));
        return t.some((x) => x.includes('invalid JSON')) && t.some((x) => x.includes('missing field "summary"')) ? t : null;
      },
      90_000,
    );
    await screenshot(page, '1-problems');
    log(`problems: ${texts.filter((t) => !t.includes('broken.jsonl')).join(' | ')}`);
    assert.ok(texts.some((t) => t.includes('broken.jsonl')), 'the file heads its problems');
    const line2 = texts.find((t) => t.includes('invalid JSON'))!;
    assert.match(line2, /\[Ln 2, Col \d+\]/, 'the invalid JSON is on line 2');
    const line3 = texts.find((t) => t.includes('missing field "summary"'))!;
    assert.match(line3, /\[Ln 3, Col \d+\]/, 'the record without a summary is on line 3');
    await runCommand(page, 'View: Hide Panel');
  });

  test('(b) Fine-tune Phi-2 on a CPU config (SmolLM2): the run completes, one loss point per logged step', async () => {
    const page = session.page;
    const runsDir = path.join(workspace, 'runs');
    await runCommand(page, 'QLoRA Studio: Fine-tune Phi-2');
    await pickQuickItem(page, 'e2e-smollm2.yaml');
    // The environment check starts the engine (imports torch), then the memory plan: the start step.
    const start = page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Start training' }).first();
    await start.waitFor({ timeout: 240_000 });
    const title = (await page.locator('.quick-input-widget .quick-input-title').first().textContent()) ?? '';
    log(`plan: ${title}`);
    assert.match(title, /e2e-smollm2\.yaml — peak ≈ [\d.]+ \S+ on CPU \(no CUDA GPU\)/, 'the memory estimate is shown before the start');
    await screenshot(page, '2a-plan');
    await start.click();
    log('training started');
    const runDir = await waitFor('the run folder', () => fs.readdirSync(runsDir).filter((n) => n !== pastRun).map((n) => path.join(runsDir, n))[0], 120_000);
    trainedRun = path.basename(runDir);
    const frame = await dashboardFrame(page);
    await frame.locator(`article.run[data-run-id="${path.basename(runDir)}"]`).waitFor({ timeout: 60_000 });
    const chart = frame.locator('.chart[data-metric="loss"]');
    // Live: points arrive from train/didProgress while the run trains.
    await waitFor('live loss points', async () => Number(await chart.getAttribute('data-points')) >= 2, 5 * 60_000, 250);
    await screenshot(page, '2-dashboard-training');
    const record = await waitFor(
      'run.json to say the run ended',
      () => {
        try {
          const r = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { status: string; step: number; error: unknown };
          return r.status !== 'running' ? r : null;
        } catch {
          return null;
        }
      },
      15 * 60_000,
      2000,
    );
    assert.equal(record.status, 'completed', `the run ended ${record.status}: ${JSON.stringify(record.error)}`);
    assert.equal(record.step, E2eSteps);
    const logged = new Set(
      fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; step: number }).filter((m) => m.type === 'train').map((m) => m.step),
    );
    assert.ok(logged.size > 0, 'metrics.jsonl logs train steps');
    await waitFor('the loss chart to show every logged step', async () => (await chart.getAttribute('data-points')) === String(logged.size), 60_000, 500);
    const badge = frame.locator(`article.run[data-run-id="${path.basename(runDir)}"] [data-testid="run-status"]`);
    await waitFor('the dashboard to say completed', async () => (await badge.textContent()) === 'completed', 60_000, 500);
    assert.equal(await chart.locator('canvas').count(), 1, 'the loss chart is drawn');
    assert.equal(await frame.locator('.chart[data-metric="evalLoss"]').getAttribute('data-points'), '2', 'eval at steps 3 and 6');
    // The webview's console reaches session.consoleErrors (so a CSP violation there would too).
    await frame.evaluate(() => console.error('qlora-e2e: webview console probe'));
    await waitFor('the webview console probe', () => session.consoleErrors.find((e) => e.includes('qlora-e2e: webview console probe')), 5000, 100);
    // Not the workbench's own (it blocks its disabled gallery's loopback requests).
    const csp = session.consoleErrors.filter((e) => !e.split(': ')[0]!.endsWith('/workbench/workbench.js') && /Content Security Policy|Refused to/i.test(e));
    assert.deepEqual(csp, [], 'the dashboard runs under its CSP without violations');
    await runCommand(page, 'Notifications: Clear All Notifications');
    await page.waitForTimeout(500);
    await screenshot(page, '3-dashboard-dark');
    // Compare with the past run: its points come from its metrics.jsonl.
    await frame.locator(`vscode-checkbox[data-run-id="${pastRun}"]`).click();
    const pastLogged = fs.readFileSync(path.join(runsDir, pastRun, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"type": "train"') || l.includes('"type":"train"')).length;
    const series = await waitFor(
      'both runs in the loss chart',
      async () => {
        const v = JSON.parse((await chart.getAttribute('data-series')) ?? '[]') as { runId: string; points: number }[];
        return v.length === 2 ? v : null;
      },
      30_000,
      500,
    );
    assert.deepEqual(
      Object.fromEntries(series.map((x) => [x.runId, x.points])),
      { [path.basename(runDir)]: logged.size, [pastRun]: pastLogged },
      'each run has its own series, one point per logged step',
    );
    await frame.locator(`article.run[data-run-id="${pastRun}"]`).waitFor({ timeout: 10_000 });
    await page.waitForTimeout(500);
    await screenshot(page, '3b-dashboard-compare');
    await setTheme(session, 'Light Modern');
    await waitFor('the light theme in the dashboard', async () => ((await frame.locator('body').getAttribute('class')) ?? '').includes('vscode-light'), 30_000, 500);
    await page.waitForTimeout(1000);
    await screenshot(page, '4-dashboard-light');
    await setTheme(session, 'Dark Modern');
    await waitFor('the dark theme again', async () => ((await frame.locator('body').getAttribute('class')) ?? '').includes('vscode-dark'), 30_000, 500);
    await page.waitForTimeout(1000); // the theme setting is written
    // A window reload restores the dashboard (serializer + getState) with the same run and points.
    await page.reload();
    await page.locator('.statusbar-item', { hasText: 'QLoRA' }).first().waitFor({ timeout: 120_000 });
    const restored = await dashboardFrame(page);
    await restored.locator(`article.run[data-run-id="${path.basename(runDir)}"]`).waitFor({ timeout: 60_000 });
    await waitFor('the restored loss chart', async () => (await restored.locator('.chart[data-metric="loss"]').getAttribute('data-points')) === String(logged.size), 30_000, 500);
    log('dashboard restored after reload');
    // The Runs view lists the run with its status and steps.
    await runCommand(page, 'QLoRA Studio: Focus on Runs View');
    const item = page.locator('.monaco-list-row', { hasText: path.basename(runDir) }).first();
    await item.waitFor({ timeout: 30_000 });
    assert.match((await item.getAttribute('aria-label')) ?? (await item.textContent()) ?? '', new RegExp(`completed · ${E2eSteps}/${E2eSteps}`));
    await item.click();
    await page.locator('.monaco-list-row', { hasText: 'Adapter' }).first().waitFor({ timeout: 10_000 });
    await screenshot(page, '4b-runs-view');
    await runCommand(page, 'View: Show Explorer');
  });

  test('(c) Summarize Selection with Adapter: the summary appears beside the selection and inserts', async () => {
    const page = session.page;
    await openFile(page, 'dialogue.txt');
    await page.locator('.editor-instance .view-lines').first().click();
    await page.keyboard.press('Control+A');
    await runCommand(page, 'QLoRA Studio: Summarize Selection with Adapter');
    // Two completed runs: the adapter is picked, the latest completed run first (Enter takes it).
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Summarize with which adapter?' }).waitFor({ timeout: 30_000 });
    const first = page.locator('.quick-input-widget .monaco-list-row').first();
    await waitFor('the latest completed run first', async () => new RegExp(`${trainedRun}.*latest completed`).test((await first.textContent()) ?? ''), 10_000, 200);
    await page.keyboard.press('Enter');
    const thread = page.locator('.review-widget').first();
    await thread.waitFor({ timeout: 240_000 });
    // The summary streams into the thread ("generating…"); the complete one has its token count and time.
    const complete = (text: string): boolean => !text.includes('generating…') && /\d+ tokens · [\d.]+ s/.test(text);
    await waitFor('the adapter\'s summary', async () => {
      const text = (await thread.textContent()) ?? '';
      return text.includes(`Adapter · ${trainedRun}`) && complete(text);
    }, 60_000, 500);
    const body = ((await thread.locator('.comment-body').first().textContent()) ?? '').trim();
    log(`summary: ${body.slice(0, 160)}`);
    assert.ok(body.length > 0, 'the summary has text');
    await screenshot(page, '5-summary');
    // The comparison toggle summarizes again with the base model too, side by side.
    await thread.locator('.action-label[aria-label="Toggle Compare Summaries with Base Model"]').first().click();
    await waitFor('the base model\'s summary', async () => {
      const text = (await page.locator('.review-widget').first().textContent()) ?? '';
      return text.includes('Base model (no adapter)') && complete(text);
    }, 120_000, 500);
    await screenshot(page, '5b-summary-compared');
    const summary = body.replace(/\s*\d+ tokens · [\d.]+ s$/, '').trim();
    await page.locator('.review-widget').first().locator('.action-label[aria-label="Insert Summary"]').first().click();
    const inserted = await waitFor(
      'the summary inserted below the selection',
      async () => {
        const text = (await page.locator('.editor-instance .view-lines').first().textContent()) ?? '';
        return text.replace(/\s+/g, ' ').includes(summary.slice(0, 30).replace(/\s+/g, ' ')) ? text : null;
      },
      30_000,
      500,
    );
    assert.ok(inserted);
    await screenshot(page, '6-summary-inserted');
  });

  test('(d) Evaluate Adapter: the dashboard shows ROUGE of the base model vs the adapter, per example', async () => {
    const page = session.page;
    await runCommand(page, 'QLoRA Studio: Evaluate Adapter');
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'Evaluate which adapter?' }).waitFor({ timeout: 30_000 });
    const first = page.locator('.quick-input-widget .monaco-list-row').first();
    await waitFor('the newest run first', async () => ((await first.textContent()) ?? '').includes(trainedRun), 10_000, 200);
    await page.keyboard.press('Enter');
    const reportFile = path.join(workspace, 'runs', trainedRun, 'eval', 'report.json');
    await waitFor('eval/report.json', () => fs.existsSync(reportFile), 5 * 60_000, 1000);
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { count: number; metrics: { name: string; base: number; adapter: number }[] };
    assert.equal(report.count, EvalLimit);
    const frame = await dashboardFrame(page);
    const table = frame.locator(`.report[data-run-id="${trainedRun}"] table.metrics`);
    await table.waitFor({ timeout: 60_000 });
    const rows = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    assert.deepEqual(
      rows.map((r) => r.slice(0, 3)),
      report.metrics.map((m) => [m.name, (m.base * 100).toFixed(2), (m.adapter * 100).toFixed(2)]),
      'the table shows report.json, base and adapter side by side',
    );
    assert.equal(await frame.locator(`.report[data-run-id="${trainedRun}"] details.example`).count(), EvalLimit, 'one side-by-side entry per example');
    await runCommand(page, 'View: Hide Panel');
    await page.waitForTimeout(500);
    await screenshot(page, '8-eval-report');
  });
});

describe('QLoRA Studio in Restricted Mode (untrusted folder)', { timeout: 10 * 60_000 }, () => {
  let session: Session;
  let workspace: string;

  before(async () => {
    const { tools, vsix } = prepare();
    workspace = makeWorkspace();
    plantHostileFiles(workspace);
    // The engine's Python is a user setting (honoured once the folder is trusted; ignored before).
    session = await launch(tools, vsix, workspace, { ...baseSettings, 'qloraStudio.pythonPath': enginePython(), 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'always' }, { workspaceTrust: true });
  });

  after(async () => {
    await session?.close();
    if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
  });

  test('linting works; Fine-tune Phi-2 is disabled with an explanation', async () => {
    const page = session.page;
    await openFile(page, 'broken.jsonl');
    await runCommand(page, 'View: Focus Problems');
    const rows = page.locator('.markers-panel .monaco-list-row');
    await waitFor('the invalid JSON in the Problems panel', async () => (await rows.evaluateAll((els) => els.map((e) => e.textContent ?? ''))).some((t) => t.includes('invalid JSON')), 90_000);
    await runCommand(page, 'QLoRA Studio: Fine-tune Phi-2');
    const toast = page.locator('.notification-toast', { hasText: 'Restricted Mode' }).first();
    await toast.waitFor({ timeout: 30_000 });
    const text = (await toast.textContent()) ?? '';
    assert.match(text, /Fine-tuning is disabled in Restricted Mode/);
    assert.match(text, /Linting of datasets, templates and configs still works/);
    assert.match(text, /Manage Workspace Trust/, 'the message offers the way out');
    await page.waitForTimeout(800); // the toast's fade-in
    await screenshot(page, '7-restricted-mode');
    assert.equal(fs.existsSync(path.join(workspace, 'runs')), false, 'nothing was started');
  });

  test('a hostile config (trust_remote_code, model code, a yaml.py at the root) starts no Python', async () => {
    const page = session.page;
    const before = new Set(engineProcesses()); // an engine of the trusted session above may still be exiting
    await openFile(page, 'hostile.yaml');
    const lens = page.locator('.contentWidgets .codelens-decoration, .codelens-decoration', { hasText: 'Memory estimate' }).first();
    await lens.waitFor({ timeout: 90_000 });
    await waitFor('the Restricted Mode lens', async () => /trust this workspace/.test((await lens.textContent()) ?? ''), 60_000);
    await page.waitForTimeout(3000); // time for anything that would start to start
    assert.deepEqual(engineProcesses().filter((pid) => !before.has(pid)), [], 'an engine process started in Restricted Mode');
    for (const marker of ['MARKER-yaml', 'MARKER-model-code']) assert.equal(fs.existsSync(path.join(workspace, marker)), false, `${marker} appeared`);
    await screenshot(page, '7b-restricted-lens');
  });

  test('once the folder is trusted the engine starts, and still neither yaml.py nor the model\'s code runs', async () => {
    const page = session.page;
    const before = new Set(engineProcesses());
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    const trust = page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust$/ }).first();
    await trust.waitFor({ timeout: 30_000 });
    await trust.click();
    await waitFor('Restricted Mode to end', async () => (await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).count()) === 0, 30_000);
    await runCommand(page, 'View: Close All Editors');
    await openFile(page, 'hostile.yaml');
    // The lens asks the engine with trust_remote_code off (opening a file is not consent): phi's own class is used.
    const lens = page.locator('.contentWidgets .codelens-decoration, .codelens-decoration', { hasText: 'Memory estimate' }).first();
    await waitFor('a computed memory estimate', async () => /Memory estimate: [\d.]+ GiB peak/.test((await lens.textContent()) ?? ''), 180_000).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}; the lens reads: ${await lens.textContent()}`);
    });
    assert.ok(engineProcesses().some((pid) => !before.has(pid)), 'the engine started once trusted');
    for (const marker of ['MARKER-yaml', 'MARKER-model-code']) assert.equal(fs.existsSync(path.join(workspace, marker)), false, `${marker} appeared`);
    await screenshot(page, '7c-trusted-lens');
  });
});

/** A config that would run code if anything started Python here: trust_remote_code, a model folder whose
 * auto_map points at its own Python, and a yaml.py at the workspace root (the CWD of a careless engine start). */
function plantHostileFiles(ws: string): void {
  const marker = (name: string): string => `open(${JSON.stringify(path.join(ws, name))}, "w").write("ran")\n`;
  fs.writeFileSync(path.join(ws, 'yaml.py'), marker('MARKER-yaml'));
  const model = path.join(ws, 'hostile-model');
  fs.mkdirSync(model);
  const config = JSON.parse(fs.readFileSync(path.join(root, 'samples', 'models', 'phi-2', 'config.json'), 'utf8')) as Record<string, unknown>;
  config.auto_map = { AutoConfig: 'modeling_evil.EvilConfig', AutoModelForCausalLM: 'modeling_evil.EvilModel' };
  fs.writeFileSync(path.join(model, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(path.join(model, 'modeling_evil.py'), marker('MARKER-model-code'));
  fs.writeFileSync(
    path.join(ws, 'hostile.yaml'),
    'model: ./hostile-model\ntrust_remote_code: true\nquantization: none\ndata: { train: dialogsum/train.jsonl }\ntemplate: dialogsum/summarize.prompt.yaml\n',
  );
}

/** Pids of running engine processes (`python -m qlora_engine`), from /proc. */
function engineProcesses(): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes('qlora_engine')) out.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}
