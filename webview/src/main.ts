/**
 * The dashboard webview. Never imports 'vscode': it talks to the extension only through postMessage
 * (protocol/webview.ts). It posts `ready` once listening, keeps its selection and tab in setState, and asks the
 * host for the data of the runs it shows.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import type { DownloadProgress } from '../../protocol/engine';
import { downloadFields, downloadFraction } from '../../protocol/format';
import type { DashboardState, DashboardTab, HostMessage, WebviewMessage } from '../../protocol/webview';
import { Chart, chartSpecs, runColor, shortId } from './charts';
import { renderReport } from './report';
import { Store, statusLabel, type LoadedRun } from './store';
import './style.css';

interface VsCodeApi {
  postMessage(message: WebviewMessage): void;
  getState(): DashboardState | undefined;
  setState(state: DashboardState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const store = new Store();
const initial = vscode.getState();
let state: DashboardState = { selected: initial?.selected ?? [], tab: initial?.tab ?? 'charts' };
let haveRunList = false;

const post = (m: WebviewMessage): void => vscode.postMessage(m);
const save = (): void => vscode.setState(state);

function h<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---------------------------------------------------------------- skeleton
const app = document.getElementById('app')!;
const header = h('header');
const title = h('h1', undefined, 'QLoRA Studio — Dashboard');
const picker = h('div', 'picker');
picker.setAttribute('role', 'group');
picker.setAttribute('aria-label', 'Runs to show');
header.append(title, picker);
const summary = h('section', 'summary');
const tabs = document.createElement('vscode-tabs');
const tabNames: DashboardTab[] = ['charts', 'report'];
const chartsHeader = document.createElement('vscode-tab-header');
chartsHeader.slot = 'header';
chartsHeader.textContent = 'Charts';
const chartsPanel = document.createElement('vscode-tab-panel');
const grid = h('div', 'grid');
grid.id = 'charts';
chartsPanel.append(grid);
const reportHeader = document.createElement('vscode-tab-header');
reportHeader.slot = 'header';
reportHeader.textContent = 'Evaluation report';
const reportPanel = document.createElement('vscode-tab-panel');
const reportHost = h('div');
reportHost.id = 'report';
reportPanel.append(reportHost);
tabs.append(chartsHeader, chartsPanel, reportHeader, reportPanel);
tabs.selectedIndex = tabNames.indexOf(state.tab);
tabs.addEventListener('vsc-tabs-select', (e) => {
  state.tab = tabNames[e.detail.selectedIndex] ?? 'charts';
  save();
});
const empty = h('p', 'empty big', 'No runs yet. Run “QLoRA Studio: Fine-tune Phi-2” to start one; its loss curves appear here live.');
app.append(header, summary, tabs, empty);

const charts = chartSpecs.map((spec) => new Chart(spec));
grid.append(...charts.map((c) => c.element));

// ---------------------------------------------------------------- theme
let themeKey = document.body.className;
new MutationObserver(() => {
  if (document.body.className === themeKey) return;
  themeKey = document.body.className;
  renderAll();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });

// ---------------------------------------------------------------- rendering
function selectedLoaded(): string[] {
  return state.selected.filter((id) => store.loaded.has(id));
}

function renderPicker(): void {
  picker.replaceChildren(
    ...store.runs.slice(0, 30).map((run) => {
      const box = document.createElement('vscode-checkbox');
      box.label = `${shortId(run.runId)} · ${statusLabel[run.status]}`;
      box.title = run.runDir;
      box.checked = state.selected.includes(run.runId);
      box.dataset.runId = run.runId;
      box.addEventListener('change', () => select(run.runId, box.checked));
      return box;
    }),
  );
}

function select(runId: string, on: boolean): void {
  const set = state.selected.filter((id) => id !== runId);
  if (on) set.push(runId);
  state.selected = set;
  save();
  const missing = set.filter((id) => !store.loaded.has(id));
  if (missing.length) post({ type: 'load', runIds: missing });
  renderAll();
}

function fmtDuration(s: number | null): string {
  if (s === null || !Number.isFinite(s) || s < 0) return '—';
  const r = Math.round(s);
  if (r < 60) return `${r}s`;
  const m = Math.floor(r / 60);
  return m < 60 ? `${m}m ${String(r % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

function runCard(run: LoadedRun, index: number): HTMLElement {
  const card = h('article', 'run');
  card.dataset.runId = run.info.runId;
  card.dataset.status = run.info.status;
  const top = h('div', 'run-head');
  const swatch = h('i', 'swatch');
  swatch.style.background = runColor(index);
  const name = h('h2', undefined, run.info.runId);
  const badge = h('span', `badge ${run.info.status}`, statusLabel[run.info.status]);
  badge.setAttribute('data-testid', 'run-status');
  top.append(swatch, name, badge);

  const last = [...run.train.values()].sort((a, b) => b.step - a.step)[0] ?? null;
  const step = Math.max(run.info.step, last?.step ?? 0);
  const total = run.info.totalSteps;
  const facts = h('div', 'facts');
  const fact = (label: string, value: string): void => {
    const f = h('span', 'fact');
    f.append(h('b', undefined, label), ` ${value}`);
    facts.append(f);
  };
  fact('step', `${step}/${total || '?'}`);
  if (run.info.status === 'running' && !run.download) fact('ETA', fmtDuration(run.etaSeconds));
  if (last?.elapsedSeconds != null) fact('elapsed', fmtDuration(last.elapsedSeconds));
  if (last?.loss != null) fact('loss', last.loss.toFixed(4));
  if (run.info.best) fact(`best ${run.info.best.label}`, `${run.info.best.value.toFixed(4)} @${run.info.best.step}`);
  card.append(top, facts);

  if (run.download) card.append(downloadBox(run.download));
  else if (run.info.status === 'running' && total > 0) {
    const bar = document.createElement('vscode-progress-bar');
    bar.value = step;
    bar.max = total;
    card.append(bar);
  }
  if (run.message && !run.download) card.append(h('p', 'message', run.message));
  if (run.info.error) card.append(h('p', 'error', run.info.error));

  const c = run.config;
  if (c) {
    const dl = h('dl', 'config');
    const row = (k: string, v: string | number | null): void => {
      if (v === null || v === '') return;
      dl.append(h('dt', undefined, k), h('dd', undefined, String(v)));
    };
    row('model', c.model);
    row('quantization', c.quantization);
    row('LoRA', c.loraR !== null ? `r ${c.loraR}, alpha ${c.loraAlpha ?? '?'} on ${c.targetModules.join(', ')}` : null);
    row('learning rate', c.learningRate);
    row('steps', c.maxSteps);
    const devices = store.devices(run.info.runId);
    row('devices', devices > 1 ? `${devices}, data parallel` : null);
    row('batch', c.microBatchSize !== null ? `${c.microBatchSize} × ${c.gradientAccumulation ?? 1} accumulation` : null);
    row('optimizer', c.optimizer);
    row('max length', c.maxLength);
    card.append(dl);
  }

  const actions = h('div', 'actions');
  const button = (label: string, onClick: () => void, secondary = true): void => {
    const b = document.createElement('vscode-button');
    b.textContent = label;
    b.secondary = secondary;
    b.addEventListener('click', onClick);
    actions.append(b);
  };
  const id = run.info.runId;
  if (run.info.status === 'running') button('Cancel run', () => post({ type: 'cancel', runId: id }), false);
  if (run.info.hasAdapter) button('Evaluate adapter', () => post({ type: 'evaluate', runId: id }));
  button('Open config', () => post({ type: 'open', runId: id, what: 'config' }));
  button('Engine log', () => post({ type: 'open', runId: id, what: 'log' }));
  card.append(actions);
  return card;
}

/** The base model's download (the run's `downloading` stage): a bar of the bytes, their numbers and the file. */
function downloadBox(d: DownloadProgress): HTMLElement {
  const box = h('section', 'download');
  box.setAttribute('data-testid', 'download');
  const [bytes, speed, left, file] = downloadFields(d);
  const head = h('p', 'download-head');
  head.append(h('b', undefined, `Downloading ${d.model}`), h('span', 'percent', `${Math.floor(downloadFraction(d) * 100)}%`));
  const bar = document.createElement('vscode-progress-bar');
  bar.value = d.bytesDone;
  bar.max = Math.max(1, d.bytesTotal);
  const facts = h('div', 'facts');
  const files = d.filesTotal > 1 ? ` (${Math.min(d.filesDone + 1, d.filesTotal)} of ${d.filesTotal})` : '';
  for (const [label, value] of [['downloaded', bytes], ['speed', speed], ['left', left.replace(/^ETA /, '')], ['file', `${file}${files}`]] as const) {
    if (label === 'file' && !file) continue;
    const f = h('span', 'fact');
    f.append(h('b', undefined, label), ` ${value}`);
    facts.append(f);
  }
  box.append(head, bar, facts);
  return box;
}

function renderAll(): void {
  renderPicker();
  const ids = selectedLoaded();
  empty.hidden = !haveRunList || store.runs.length > 0;
  tabs.hidden = store.runs.length === 0;
  summary.replaceChildren(...ids.map((id, i) => runCard(store.loaded.get(id)!, i)));
  for (const chart of charts) chart.update(store, ids, themeKey);
  renderReports(ids);
}

function renderReports(ids: string[]): void {
  const withReport = ids.map((id) => store.loaded.get(id)!).filter((r) => r.report);
  if (withReport.length === 0) {
    const p = h('p', 'empty', ids.length ? 'No evaluation report for the selected runs yet.' : 'Select a run.');
    const runWithAdapter = ids.map((id) => store.loaded.get(id)!).find((r) => r.info.hasAdapter);
    if (runWithAdapter) {
      const b = document.createElement('vscode-button');
      b.textContent = `Evaluate ${shortId(runWithAdapter.info.runId)}`;
      b.addEventListener('click', () => post({ type: 'evaluate', runId: runWithAdapter.info.runId }));
      reportHost.replaceChildren(p, b);
    } else reportHost.replaceChildren(p);
    return;
  }
  reportHost.replaceChildren(...withReport.map((r) => renderReport(r.report!, r.info.runId)));
}

/** One run's card, redrawn in place; false when the run is not shown. */
function renderCard(runId: string): boolean {
  const ids = selectedLoaded();
  if (!ids.includes(runId)) return false;
  const old = summary.querySelector(`article[data-run-id="${CSS.escape(runId)}"]`);
  const card = runCard(store.loaded.get(runId)!, ids.indexOf(runId));
  if (old) old.replaceWith(card);
  else summary.append(card);
  return true;
}

/** Only the charts (a progress event): cheaper than renderAll, and the cards' numbers follow. */
function renderRun(runId: string): void {
  if (renderCard(runId)) for (const chart of charts) chart.update(store, selectedLoaded(), themeKey);
}

// ---------------------------------------------------------------- messages
window.addEventListener('message', (event: MessageEvent<HostMessage>) => {
  const message = event.data;
  if (message.type === 'show') {
    for (const id of message.runIds) if (!state.selected.includes(id)) state.selected.unshift(id);
    if (message.runIds.length) state.selected = state.selected.filter((id) => message.runIds.includes(id) || store.loaded.has(id)).slice(0, 6);
    if (message.tab) {
      state.tab = message.tab;
      tabs.selectedIndex = tabNames.indexOf(message.tab);
    }
    save();
    const missing = state.selected.filter((id) => !store.loaded.has(id));
    if (missing.length) post({ type: 'load', runIds: missing });
    renderAll();
    return;
  }
  const changed = store.apply(message);
  if (message.type === 'runs') {
    haveRunList = true;
    const known = new Set(store.runs.map((r) => r.runId));
    state.selected = state.selected.filter((id) => known.has(id));
    if (state.selected.length === 0) state.selected = store.defaultSelection();
    save();
    const missing = state.selected.filter((id) => !store.loaded.has(id));
    if (missing.length) post({ type: 'load', runIds: missing });
    renderAll();
    return;
  }
  if (message.type === 'progress' || message.type === 'evalPoint') {
    renderRun(message.runId);
    return;
  }
  // Download bytes, a few times a second: only the run's card changes (the next stage, without them, redraws all).
  if (message.type === 'status' && message.download && store.loaded.get(message.runId)?.download && renderCard(message.runId)) return;
  if (changed.length) renderAll();
});

post({ type: 'ready' });
