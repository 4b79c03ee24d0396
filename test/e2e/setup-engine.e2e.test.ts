/**
 * Set Up Engine Environment end to end (issue 15), in code-server on a fresh profile with no interpreter configured:
 * the command creates the environment in the extension's global storage (not its install folder), shows a percentage
 * with the step and the download sizes, can be cancelled and resumed, and after a reinstall of the .vsix the
 * extension starts its engine from that same environment. It really installs (torch, transformers, …: pip's cache,
 * when it has the files, saves the downloads only).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { baseSettings, launch, log, openFile, packageVsix, root, runCommand, screenshot, setupTools, waitFor, type Session, type Tools } from './harness';

const ExtensionId = 'qlora-studio.qlora-studio';

/** No interpreter from outside: the extension must find the one it set up. */
const cleanEnv = { QLORA_STUDIO_PYTHON: undefined, QLORA_STUDIO_VENV: undefined, VIRTUAL_ENV: undefined };

function makeWorkspace(): string {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-e2e-setup-ws-'));
  fs.cpSync(path.join(root, 'samples', 'dialogsum'), path.join(ws, 'dialogsum'), { recursive: true });
  fs.symlinkSync(path.join(root, 'samples', 'models'), path.join(ws, 'models'));
  return ws;
}

/** The text of the set-up's progress notification, or null when none shows. */
async function progressText(s: Session): Promise<string | null> {
  const toast = s.page.locator('.notification-toast', { hasText: 'setting up the engine' }).first();
  return (await toast.count()) ? ((await toast.textContent()) ?? '') : null;
}

/** Accepts the command's modal (Create, or Check and Repair when the environment exists). */
async function confirmModal(s: Session, button: RegExp): Promise<void> {
  const ok = s.page.locator('.monaco-dialog-box .monaco-button', { hasText: button }).first();
  await ok.waitFor({ timeout: 30_000 });
  await ok.click();
}

/** Pids of processes whose command line mentions `text` (pip inside the environment, the engine). */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) out.push(Number(entry));
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/**
 * Part of `npm test` (issue 15: the set-up is tested end to end, with its real install). A real install of torch (3.0 GB
 * from PyPI: no pip cache behind this proxy) takes about 3.5 minutes on the 2-core CI machine.
 * `QLORA_STUDIO_E2E_SETUP=0` skips it for a quick local run.
 */
const skipSetup = process.env.QLORA_STUDIO_E2E_SETUP === '0' ? 'QLORA_STUDIO_E2E_SETUP=0' : false;

describe('Set Up Engine Environment on a fresh profile', { timeout: 20 * 60_000, skip: skipSetup }, () => {
  let tools: Tools;
  let vsix: string;
  let session: Session;
  let workspace: string;
  let venv: string;
  let extensionFolder: string;

  before(async () => {
    tools = setupTools();
    vsix = packageVsix();
    workspace = makeWorkspace();
    session = await launch(tools, vsix, workspace, baseSettings, { env: cleanEnv });
    venv = path.join(session.base, 'data', 'User', 'globalStorage', ExtensionId, 'engine-env');
    extensionFolder = path.join(session.base, 'extensions', fs.readdirSync(path.join(session.base, 'extensions')).find((n) => n.startsWith(ExtensionId))!);
  });

  after(async () => {
    await session?.close();
    if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
  });

  test('the set-up shows its step, percentage and sizes, is cancelled, and resumes to a working environment in global storage', async () => {
    const page = session.page;
    assert.equal(fs.existsSync(venv), false, 'a fresh profile has no environment');
    await runCommand(page, 'QLoRA Studio: Set Up Engine Environment');
    await confirmModal(session, /^Create$/);
    // Progress: "NN% · step 2 of 4: Installing torch — downloading torch (1.20 GB of 3.00 GB)".
    const seen: string[] = [];
    const downloading = await waitFor(
      'a download with its sizes in the progress notification',
      async () => {
        const text = await progressText(session);
        if (text && !seen.includes(text)) seen.push(text);
        return text && /(\d+)% · step 2 of 4: Installing torch — downloading \S+ \([\d.]+ [kMG]B of [\d.]+ [kMG]B\)/.test(text) && Number(/(\d+)%/.exec(text)![1]) >= 5 ? text : null;
      },
      5 * 60_000,
      200,
    );
    log(`progress: ${/\d+% · .*?\)/.exec(downloading)![0]}`);
    await screenshot(page, 'setup-1-progress');
    assert.ok(fs.existsSync(path.join(venv, 'bin', 'python')), `the environment is being made in global storage (${venv})`);
    assert.equal(fs.existsSync(path.join(extensionFolder, '.venv')), false, 'nothing in the extension folder');

    // Cancel: the notification's cancel button stops the script and its pip.
    const toast = page.locator('.notification-toast', { hasText: 'setting up the engine' }).first();
    await toast.hover();
    await toast.locator('.monaco-button', { hasText: 'Cancel' }).first().click();
    const resume = page.locator('.notification-toast', { hasText: 'Engine set-up cancelled' }).first();
    await resume.waitFor({ timeout: 30_000 });
    await waitFor('the set-up script and pip to stop', () => processesWith(venv).length === 0, 20_000, 250);
    log('cancelled; no pip left running');
    await screenshot(page, 'setup-2-cancelled');

    // Resume: the environment exists, so the command offers a repair, which installs what is still missing.
    const started = Date.now();
    await resume.locator('.monaco-button', { hasText: 'Resume' }).click();
    await confirmModal(session, /^Check and Repair$/);
    const percents: number[] = [];
    await waitFor(
      'the set-up to finish',
      async () => {
        const text = await progressText(session);
        const m = text ? /(\d+)% · step/.exec(text) : null;
        if (m) percents.push(Number(m[1]));
        if (text && !seen.includes(text)) seen.push(text);
        return (await page.locator('.notification-toast', { hasText: 'The engine environment is ready' }).count()) > 0;
      },
      12 * 60_000,
      500,
    );
    log(`set-up resumed and finished in ${((Date.now() - started) / 1000).toFixed(0)} s; messages seen: ${seen.length}`);
    for (const step of ['step 2 of 4: Installing torch', "step 3 of 4: Installing the engine's packages", 'step 4 of 4: Preparing the demo models']) {
      assert.ok(seen.some((t) => t.includes(step)), `the notification named "${step}"; it showed:\n${seen.join('\n')}`);
    }
    assert.ok(seen.some((t) => /unpacking \d+ packages/.test(t)), 'the unpacking is a step of its own');
    assert.deepEqual([...percents].sort((a, b) => a - b), percents, 'the percentage only grows');
    await screenshot(page, 'setup-3-ready');
    const stamp = path.join(venv, '.qlora-studio-stamp');
    assert.ok(fs.existsSync(stamp), 'the environment records the requirements it was made for');
    assert.ok(fs.existsSync(path.join(venv, '.qlora-studio-torch.json')), 'and the torch build');
    assert.equal(fs.existsSync(path.join(extensionFolder, '.venv')), false, 'nothing in the extension folder');
  });

  test('reinstalling the extension keeps the environment, and the engine starts from it', async () => {
    const stamp = path.join(venv, '.qlora-studio-stamp');
    const torchDir = fs.readdirSync(path.join(venv, 'lib')).map((d) => path.join(venv, 'lib', d, 'site-packages', 'torch')).find((d) => fs.existsSync(d))!;
    const before = { stamp: fs.statSync(stamp).mtimeMs, torch: fs.statSync(torchDir).ino };
    await session.close(true);
    session = await launch(tools, vsix, workspace, baseSettings, { env: cleanEnv, base: session.base });
    assert.deepEqual({ stamp: fs.statSync(stamp).mtimeMs, torch: fs.statSync(torchDir).ino }, before, 'the same environment, untouched');
    // The memory estimate lens asks the engine: it starts on the environment in global storage.
    await openFile(session.page, 'tiny.yaml');
    const lens = session.page.locator('.contentWidgets .codelens-decoration, .codelens-decoration', { hasText: 'Memory estimate' }).first();
    await waitFor('a computed memory estimate', async () => /Memory estimate: [\d.]+ \S+ peak/.test((await lens.textContent().catch(() => '')) ?? ''), 180_000, 1000);
    const engines = processesWith('qlora_engine').filter((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === path.join(venv, 'bin', 'python'));
    assert.ok(engines.length > 0, `an engine runs on ${path.join(venv, 'bin', 'python')}`);
    await session.page.locator('.statusbar-item', { hasText: 'QLoRA · CPU' }).first().waitFor({ timeout: 30_000 });
    await screenshot(session.page, 'setup-4-engine-after-reinstall');
  });
});
