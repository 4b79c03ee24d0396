/**
 * Real VS Code for the end-to-end tests: the packaged .vsix installed into a clean code-server (Node 24), a copy
 * of samples/ opened in Debian's Chromium driven by playwright-core. Everything is prepared by
 * scripts/e2e-setup.mjs (cached under .cache/e2e); screenshots go to test-results/e2e/.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { findPython } from '../../server/src/engine-client/python';

export const root = path.resolve(__dirname, '../..');
export const artifacts = path.join(root, 'test-results', 'e2e');

export interface Tools {
  node: string;
  codeServer: string;
  chromium: string;
}

const t0 = Date.now();
export function log(message: string): void {
  process.stderr.write(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}\n`);
}

export function setupTools(): Tools {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts/e2e-setup.mjs')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`scripts/e2e-setup.mjs failed (exit ${r.status})`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Tools;
}

/**
 * `npm run package`: a production build and the .vsix, exactly as shipped; once per `npm run test:e2e` (its suites
 * are files one test runner starts, so a .vsix this runner's earlier suite packaged, unchanged since, is reused).
 */
export function packageVsix(): string {
  const vsix = path.join(root, 'qlora-studio.vsix');
  const stamp = path.join(artifacts, `.packaged-for-${process.ppid}`);
  const mtime = (): string => String(fs.statSync(vsix).mtimeMs);
  if (fs.existsSync(stamp) && fs.existsSync(vsix) && fs.readFileSync(stamp, 'utf8') === mtime()) return vsix;
  const r = spawnSync('npm', ['run', '--silent', 'package'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`npm run package failed:\n${r.stdout}\n${r.stderr}`);
  fs.mkdirSync(artifacts, { recursive: true });
  fs.writeFileSync(stamp, mtime());
  return vsix;
}

/** The engine's Python: $QLORA_STUDIO_PYTHON, else the project's .venv (made by npm install). */
export function enginePython(): string {
  return findPython({ repoRoot: root }).executable;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface Session {
  page: Page;
  /** Console errors of the page and its frames (webviews included), in order. */
  consoleErrors: string[];
  workspace: string;
  userSettings: string;
  /** The profile's folder: extensions/ and data/ (global storage under data/User/globalStorage/). */
  base: string;
  /** Stops code-server and the browser; `keepProfile` leaves the profile for a later launch (a reinstall). */
  close(keepProfile?: boolean): Promise<void>;
}

/** A fresh code-server with the .vsix installed, the workspace open in Chromium. */
export interface LaunchOptions {
  /** Keep Workspace Trust on (the folder opens in Restricted Mode once the test declines to trust it). */
  workspaceTrust?: boolean;
  /** The profile of an earlier session (its extensions and global storage), the .vsix installed over it. */
  base?: string;
  /** Environment changes for code-server and so the extension host (undefined removes a variable). */
  env?: Record<string, string | undefined>;
}

/** A quiet code-server profile: no tips, updates, telemetry, trust prompt or chat; the test models hidden. */
export const baseSettings = {
  'workbench.colorTheme': 'Dark Modern',
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'security.workspace.trust.enabled': false,
  'window.restoreWindows': 'none',
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'chat.disableAIFeatures': true,
  'files.exclude': { models: true },
};

export async function launch(tools: Tools, vsix: string, workspace: string, settings: Record<string, unknown>, options: LaunchOptions = {}): Promise<Session> {
  const base = options.base ?? fs.mkdtempSync(path.join(os.tmpdir(), 'qlora-e2e-'));
  const extensions = path.join(base, 'extensions');
  const data = path.join(base, 'data');
  const userSettings = path.join(data, 'User', 'settings.json');
  fs.mkdirSync(path.dirname(userSettings), { recursive: true });
  fs.writeFileSync(userSettings, JSON.stringify(settings, null, 2));
  // code-server is a remote: machine-scoped settings (qloraStudio.pythonPath) are read from Machine/settings.json,
  // as a user of VS Code Remote would set them, not from the user settings.
  const machineSettings = path.join(data, 'Machine', 'settings.json');
  fs.mkdirSync(path.dirname(machineSettings), { recursive: true });
  fs.writeFileSync(machineSettings, JSON.stringify(settings, null, 2));
  const config = path.join(base, 'config.yaml');
  fs.writeFileSync(config, 'auth: none\ncert: false\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    // No marketplace: the gallery points at a closed loopback port, so the workbench makes no outside requests.
    EXTENSIONS_GALLERY: JSON.stringify({ serviceUrl: 'http://127.0.0.1:9/gallery', itemUrl: 'http://127.0.0.1:9/items' }),
    XDG_CONFIG_HOME: path.join(base, 'xdg'),
    XDG_DATA_HOME: path.join(base, 'xdg-data'),
  };
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const common = ['--config', config, '--extensions-dir', extensions, '--user-data-dir', data];
  fs.mkdirSync(artifacts, { recursive: true });

  const install = spawnSync(tools.node, [tools.codeServer, ...common, '--install-extension', vsix, '--force'], { encoding: 'utf8', env });
  if (install.status !== 0 || !/successfully installed/i.test(install.stdout + install.stderr)) {
    throw new Error(`code-server --install-extension failed:\n${install.stdout}\n${install.stderr}`);
  }
  log(`installed ${path.basename(vsix)}: ${(install.stdout.trim().split('\n').pop() ?? '').trim()}`);

  const port = await freePort();
  const args = [tools.codeServer, ...common, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check', ...(options.workspaceTrust ? [] : ['--disable-workspace-trust']), '--disable-getting-started-override', workspace];
  const server: ChildProcess = spawn(tools.node, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const serverLog = fs.createWriteStream(path.join(artifacts, 'code-server.log'));
  server.stdout!.pipe(serverLog);
  server.stderr!.pipe(serverLog);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('code-server did not listen within 60 s')), 60_000);
    const onData = (chunk: Buffer): void => {
      if (chunk.toString().includes('HTTP server listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    server.stdout!.on('data', onData);
    server.stderr!.on('data', onData);
    server.on('exit', (code) => reject(new Error(`code-server exited (${code})`)));
  });
  log(`code-server on 127.0.0.1:${port}`);

  const browser: Browser = await chromium.launch({
    executablePath: tools.chromium,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.location().url}: ${m.text()}`);
  });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
  await page.locator('.statusbar').waitFor({ timeout: 60_000 });
  log('workbench loaded');
  if (options.workspaceTrust) {
    // "Do you trust the authors of the files in this folder?" — no: Restricted Mode.
    const decline = page.locator('.monaco-dialog-box .monaco-button', { hasText: /don.t trust/i }).first();
    await decline.waitFor({ timeout: 60_000 });
    await decline.click();
    log('declined workspace trust (Restricted Mode)');
  }
  // The extension is active once its status bar item shows (activation: a *.jsonl in the workspace).
  await page.locator('.statusbar-item', { hasText: 'QLoRA' }).first().waitFor({ timeout: 120_000 });
  log('extension active');

  return {
    page,
    consoleErrors,
    workspace,
    userSettings,
    base,
    close: async (keepProfile = false) => {
      await browser.close().catch(() => undefined);
      server.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      if (server.exitCode === null) server.kill('SIGKILL');
      if (keepProfile) return;
      if (process.env.QLORA_E2E_KEEP) log(`kept ${base}`);
      else fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${path.relative(root, file)}`);
  return file;
}

/** Opens the command palette, types, and returns the labels of the rows shown. */
export async function paletteRows(page: Page, text: string): Promise<string[]> {
  await openPalette(page);
  await page.keyboard.type(text);
  const rows = page.locator('.quick-input-widget .monaco-list-row');
  await rows.first().waitFor({ timeout: 20_000 });
  await page.waitForTimeout(500);
  return rows.evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? e.textContent ?? ''));
}

export async function openPalette(page: Page): Promise<void> {
  // Focus the workbench (not a webview) by clicking the title bar's empty drag area.
  await page.locator('.part.titlebar').first().click({ position: { x: 300, y: 10 } }).catch(() => undefined);
  await page.keyboard.press('F1');
  try {
    await page.locator('.quick-input-widget input').waitFor({ state: 'visible', timeout: 15_000 });
  } catch (error) {
    await screenshot(page, `failed-palette-${Date.now()}`);
    throw error;
  }
}

/** Runs a command from the palette by its full title ("Category: Title"), clicking exactly that row. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await openPalette(page);
  await page.keyboard.type(title);
  const rows = page.locator('.quick-input-widget .monaco-list-row');
  const deadline = Date.now() + 20_000;
  for (;;) {
    const labels = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? ''));
    const index = labels.findIndex((l) => l === title || l.startsWith(`${title},`) || l.startsWith(`${title} `));
    if (index >= 0) {
      await rows.nth(index).click();
      return;
    }
    if (Date.now() > deadline) throw new Error(`no palette row "${title}"; rows: ${labels.join(' | ')}`);
    await page.waitForTimeout(250);
  }
}

/** Waits for a quick pick whose title or rows contain `text`, then picks the row matching `row`. */
export async function pickQuickItem(page: Page, row: string | RegExp, timeout = 60_000): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  const item = widget.locator('.monaco-list-row', { hasText: row }).first();
  await item.waitFor({ state: 'visible', timeout });
  await item.click();
}

/** Opens a workspace file by name through Quick Open. */
export async function openFile(page: Page, name: string): Promise<void> {
  await page.keyboard.press('Control+P');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible', timeout: 15_000 });
  await page.keyboard.type(name);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: name }).first().waitFor({ timeout: 20_000 });
  await page.keyboard.press('Enter');
  await page.locator(`.tab.active[aria-label*="${name}"]`).first().waitFor({ timeout: 20_000 });
}

/** The dashboard webview's inner frame (code-server nests the content in an iframe inside an iframe). */
export async function dashboardFrame(page: Page, timeout = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if (frame.url().includes('webview') && (await frame.locator('#app .grid').count()) > 0) return frame;
      } catch {
        // frame detached while looking
      }
    }
    await page.waitForTimeout(500);
  }
  throw new Error('the dashboard webview did not appear');
}

export async function waitFor<T>(what: string, probe: () => T | null | undefined | Promise<T | null | undefined>, timeoutMs: number, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** File names inside a .vsix (a zip), read from its central directory. */
export function vsixEntries(file: string): string[] {
  const buf = fs.readFileSync(file);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65_557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file} is not a zip`);
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const names: string[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error(`bad central directory entry in ${file}`);
    const nameLength = buf.readUInt16LE(at + 28);
    const extra = buf.readUInt16LE(at + 30);
    const comment = buf.readUInt16LE(at + 32);
    names.push(buf.subarray(at + 46, at + 46 + nameLength).toString('utf8'));
    at += 46 + nameLength + extra + comment;
  }
  return names;
}
