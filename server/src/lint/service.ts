/**
 * The language server's lint feature: which open document is a dataset, a template or a config; linting it
 * (datasets in abandonable slices, one publish per finished run); re-linting dependents when a config, template
 * or split changes; and hover, CodeLens, quick fixes and completion from the latest results.
 * server.ts wires it to the connection; nothing here touches the connection directly (LintHost does).
 */
import * as fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ResolvedConfig } from '../../../protocol/config';
import type { TrainDidEndParams, TrainPlanResult } from '../../../protocol/engine';
import { EngineError } from '../engine-client/rpc';
import { lintConfig, type ConfigLintOptions } from './config';
import type { RunFailure } from './run-failure';
import type { Lines } from './documents';
import { datasetContext } from './dataset';
import { standaloneContext, type DatasetContext } from './jsonl/dataset-config';
import { LineCache, lintJsonl, type JsonlResult } from './jsonl/driver';
import { rawFactsOfFile, type RawFacts } from './jsonl/raw';
import { lintTemplate } from './template';
import { datasetKeysOnDisk, templateFacts, type TemplateFacts } from './template-facts';
import type { LineFacts } from './rule';
import { span, type LintDiagnostic } from './types';
import { ConfigIndex, isConfigFileName, isTemplateFileName } from './workspace';

/** A model that only loads with its own code: the lens never runs it (see planTitle). */
export const RemoteCodeLensTitle = 'Memory estimate: not computed here, the model needs its own code (trust_remote_code); `qlora-studio plan` or Fine-tune computes it';
export const RestrictedLensTitle = 'Memory estimate: trust this workspace to compute it (Restricted Mode starts no Python)';

export interface LintHost {
  publish(uri: string, diagnostics: LintDiagnostic[], version: number | undefined): void;
  log(message: string): void;
  /** Ask the client to re-request CodeLenses (the memory estimate arrived). */
  refreshCodeLenses(): void;
  roots(): string[];
  env: NodeJS.ProcessEnv;
  /** The engine's memory estimate (`train/plan`); rejects with a reason when the engine is unavailable. */
  plan?: (config: ResolvedConfig) => Promise<TrainPlanResult>;
  /** The workspace's trust: untrusted, the lens never asks the engine (Restricted Mode runs no Python). */
  trusted?: () => boolean;
  cuda?: () => ConfigLintOptions['cuda'];
}

/** An open document (LineDocument in the server; anything with the same shape in tests). */
export interface OpenDocument extends Lines {
  uri: string;
  version: number;
  getText(): string;
  lineAt(line: number): string;
}

export type DocKind = 'dataset' | 'template' | 'config' | 'other';

interface DocState {
  uri: string;
  file: string | null;
  kind: DocKind;
  gen: number;
  running: Promise<void> | null;
  diagnostics: LintDiagnostic[];
  cache: LineCache;
  ctx: DatasetContext | null;
  ctxStamp: number;
  result: JsonlResult | null;
  /** Facts of the bytes on disk, read when the document is opened or saved. */
  raw: Promise<RawFacts | null>;
  config: ResolvedConfig | null;
  plan: { key: string; title: string | null } | null;
}

export function uriToPath(uri: string): string | null {
  if (!uri.startsWith('file:')) return null;
  try {
    return fileURLToPath(uri);
  } catch {
    return null;
  }
}

export function pathToUri(file: string): string {
  return pathToFileURL(file).href;
}

export function kindOf(file: string, text: string | null): DocKind {
  if (/\.jsonl$/i.test(file)) return 'dataset';
  if (isTemplateFileName(file)) return 'template';
  if (isConfigFileName(file) && text !== null && /^(data|template|model)\s*:/m.test(text)) return 'config';
  return 'other';
}

export class LintService {
  private readonly docs = new Map<string, DocState>();
  private readonly open = new Map<string, OpenDocument>();
  /** The last failed run of each config file (cleared by an edit of it or a completed run). */
  private readonly runFailures = new Map<string, RunFailure>();
  private readonly index: ConfigIndex;
  /** Bumped when a config or template changes: every dataset context built before is stale. */
  private epoch = 0;
  private dependentsTimer: NodeJS.Timeout | null = null;

  constructor(private readonly host: LintHost) {
    this.index = new ConfigIndex(() => host.roots(), (f) => this.readText(f));
  }

  /** An open buffer's text, else the disk's. */
  readText(file: string): string | null {
    const doc = this.open.get(pathToUri(file));
    if (doc) return doc.getText();
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  }

  state(uri: string): DocState | undefined {
    return this.docs.get(uri);
  }

  opened(doc: OpenDocument): void {
    this.open.set(doc.uri, doc);
    const file = uriToPath(doc.uri);
    const kind = kindOf(file ?? doc.uri, doc.getText());
    // Configs may have been added or changed on disk since the last scan (no file watcher): look again.
    if (kind === 'dataset' || kind === 'template') this.index.invalidate();
    const state: DocState = { uri: doc.uri, file, kind, gen: 0, running: null, diagnostics: [], cache: new LineCache(), ctx: null, ctxStamp: -1, result: null, raw: Promise.resolve(null), config: null, plan: null };
    this.docs.set(doc.uri, state);
    if (kind === 'dataset' && file) state.raw = rawFactsOfFile(file);
    if (kind === 'config' && file) this.index.update(file, doc.getText());
    this.schedule(state);
    if (kind === 'config' || kind === 'template') {
      // The buffer may differ from the disk the others were linted against.
      this.epoch++;
      this.scheduleDependents(state);
    }
  }

  /** A training run of `configFile` ended: a failure shows on the config until it changes or a run completes. */
  runEnded(configFile: string, outcome: Pick<TrainDidEndParams, 'runId' | 'status' | 'error'>): void {
    if (outcome.status === 'failed' && outcome.error) this.runFailures.set(configFile, { runId: outcome.runId, ...outcome.error });
    else if (outcome.status === 'completed') this.runFailures.delete(configFile);
    else return;
    for (const state of this.docs.values()) if (state.kind === 'config' && state.file === configFile) this.schedule(state);
  }

  changed(doc: OpenDocument): void {
    this.open.set(doc.uri, doc);
    const state = this.docs.get(doc.uri);
    if (!state) return this.opened(doc);
    if (state.kind === 'config' && state.file) this.runFailures.delete(state.file); // the user is fixing it
    if (state.kind === 'config' && state.file) this.index.update(state.file, doc.getText());
    if (state.kind === 'other' && state.file && kindOf(state.file, doc.getText()) === 'config') state.kind = 'config';
    this.schedule(state);
    if (state.kind === 'dataset') {
      // A split changed: the leakage sets of the other splits of its config are stale (their line results are
      // not), and the templates' field lists may be.
      const config = state.ctx?.configFile;
      if (!config) return;
      this.scheduleDependents(state, (other) => (other.kind === 'dataset' && other.ctx?.configFile === config) || other.kind === 'template');
    } else {
      this.epoch++;
      this.scheduleDependents(state);
    }
  }

  saved(doc: OpenDocument): void {
    const state = this.docs.get(doc.uri);
    if (state?.kind === 'dataset' && state.file) {
      state.raw = rawFactsOfFile(state.file);
      const file = state.file;
      if (this.index.configsFor(file).some((r) => r.train === file)) {
        // A config without template: takes its chat format from the first training record on disk.
        this.epoch++;
        state.ctx = null;
        this.scheduleDependents(state);
      }
      this.schedule(state);
    }
  }

  closed(uri: string): void {
    const state = this.docs.get(uri);
    this.open.delete(uri);
    this.docs.delete(uri);
    if (state) {
      state.gen++;
      if (state.kind !== 'other') this.host.publish(uri, [], undefined);
      if (state.kind === 'config' && state.file) this.index.update(state.file);
      this.epoch++;
      this.scheduleDependents(state);
    }
  }

  /** Resolves when no lint is running (tests and the bench wait on it). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.docs.values()].map((d) => d.running).filter((p): p is Promise<void> => p !== null);
      if (running.length === 0 && this.dependentsTimer === null) return;
      if (running.length) await Promise.all(running);
      else await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Re-lints the other open documents (those `which` picks) once edits pause for 250 ms. */
  private scheduleDependents(changed: DocState, which: (other: DocState) => boolean = () => true): void {
    if (this.dependentsTimer) clearTimeout(this.dependentsTimer);
    this.dependentsTimer = setTimeout(() => {
      this.dependentsTimer = null;
      for (const state of this.docs.values()) {
        if (state === changed || state.kind === 'other' || !which(state)) continue;
        if (state.kind === 'dataset') state.ctx = null;
        this.schedule(state);
      }
    }, 250);
  }

  /** Starts a lint of `state`; an older run still going notices the new generation and gives up. */
  private schedule(state: DocState): void {
    if (state.kind === 'other') return;
    const gen = ++state.gen;
    const previous = state.running ?? Promise.resolve();
    const run = previous
      .then(() => (state.gen === gen ? this.lint(state, gen) : undefined))
      .catch((error: unknown) => {
        // Rules never throw; anything else that does (reading a config, a tokenizer) still ends in one diagnostic.
        this.host.log(`lint of ${state.uri} failed: ${(error as Error).stack ?? String(error)}`);
        if (state.gen !== gen) return;
        state.diagnostics = [{ range: span(0, 0, 0), severity: 'error', code: 'lint/internal', message: `internal error while linting: ${(error as Error).message} (see the log)` }];
        this.host.publish(state.uri, state.diagnostics, this.open.get(state.uri)?.version);
      })
      .finally(() => {
        if (state.running === run) state.running = null;
      });
    state.running = run;
  }

  private async lint(state: DocState, gen: number): Promise<void> {
    const doc = this.open.get(state.uri);
    if (!doc) return;
    const version = doc.version;
    let diagnostics: LintDiagnostic[];
    if (state.kind === 'dataset') {
      const lines: Lines = { lines: doc.lines, breaks: doc.breaks };
      const ctx = await this.datasetContextFor(state);
      const raw = await state.raw;
      if (state.gen !== gen) return;
      const result = await lintJsonl(lines, ctx, { raw, cache: state.cache, control: { isCancelled: () => state.gen !== gen } });
      if (!result || state.gen !== gen) return;
      state.result = result;
      diagnostics = result.diagnostics;
    } else if (state.kind === 'template') {
      const { fields, eosToken } = await this.templateFacts(state.file);
      if (state.gen !== gen) return;
      diagnostics = lintTemplate(doc.getText(), state.file ?? state.uri, { fields, eosToken, log: (m) => this.host.log(m) });
    } else {
      const runFailure = state.file ? (this.runFailures.get(state.file) ?? null) : null;
      const result = lintConfig(doc.getText(), state.file ?? state.uri, { env: this.host.env, cuda: this.host.cuda?.() ?? null, log: (m) => this.host.log(m), runFailure });
      state.config = result.config;
      diagnostics = result.diagnostics;
    }
    state.diagnostics = diagnostics;
    this.host.publish(state.uri, diagnostics, version);
  }

  private async datasetContextFor(state: DocState): Promise<DatasetContext> {
    if (state.ctx && state.ctxStamp === this.epoch) return state.ctx;
    state.ctx = null;
    const log = (m: string): void => this.host.log(m);
    if (!state.file) return standaloneContext(null, log);
    const configFile = this.index.configsFor(state.file).find((r) => [r.train, r.validation, r.test].includes(state.file))?.configFile ?? null;
    const stamp = this.epoch;
    const openFacts = (file: string): LineFacts[] | null => {
      const other = this.docs.get(pathToUri(file));
      return other?.result && other.ctx?.configFile === configFile ? other.result.facts : null;
    };
    const ctx = await datasetContext(state.file, configFile, { readText: (f) => this.readText(f), log, env: this.host.env, openFacts });
    state.ctx = ctx;
    state.ctxStamp = stamp;
    return ctx;
  }

  /** Dataset fields and the model's EOS for a template, from the configs that use it. */
  templateFacts(file: string | null): Promise<TemplateFacts> {
    const refs = file ? this.index.configsFor(file).filter((r) => r.template === file) : [];
    return templateFacts(refs, (f) => this.readText(f), (f) => this.datasetKeys(f), this.host.env);
  }

  /** Field names of a dataset: from its lint result when open, else from the disk. */
  private datasetKeys(file: string): Set<string> | null {
    const open = this.docs.get(pathToUri(file));
    if (open?.result) {
      const keys = new Set<string>();
      for (const f of open.result.facts) for (const k of f.keys ?? []) keys.add(k);
      return keys;
    }
    return datasetKeysOnDisk(file, (f) => this.readText(f));
  }

  /** The memory estimate lens title: cached, or computed in the background (then the client is asked to refresh). */
  planTitle(state: DocState): string {
    const config = state.config;
    if (!config) return 'Memory estimate: fix the config errors first';
    if (!this.host.plan) return 'Memory estimate unavailable: no engine in this session';
    if (this.host.trusted && !this.host.trusted()) return RestrictedLensTitle;
    const key = JSON.stringify(config);
    if (state.plan?.key === key) return state.plan.title ?? 'Memory estimate: computing…';
    state.plan = { key, title: null };
    const plan = this.host.plan;
    void (async () => {
      let title: string;
      try {
        const { planLensTitle } = await import('./lens');
        // Opening a file is not consent to run a model's own Python: the lens asks with trust_remote_code off,
        // even in a trusted workspace. Only an explicit command (train, plan, eval) honours the config's value.
        title = planLensTitle(await plan({ ...config, trust_remote_code: false }));
      } catch (error) {
        // The engine names the field to change; trust_remote_code means the model needs its own code.
        const needsCode = error instanceof EngineError && error.data.field === 'trust_remote_code';
        title = config.trust_remote_code && needsCode ? RemoteCodeLensTitle : `Memory estimate unavailable: ${(error as Error).message.split('\n')[0]}`;
      }
      if (state.plan?.key === key) {
        state.plan.title = title;
        this.host.refreshCodeLenses();
      }
    })();
    return 'Memory estimate: computing…';
  }
}
