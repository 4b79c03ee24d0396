/**
 * Lint without an editor (the CLI, CI): the same rules and diagnostics as the language server, for a dataset,
 * a template or a config. A config brings its template and data files along, each linted against it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lintConfig } from './config';
import { datasetContext } from './dataset';
import { readFileText } from './jsonl/dataset-config';
import { lintJsonl } from './jsonl/driver';
import { rawFacts } from './jsonl/raw';
import { kindOf } from './service';
import { lintTemplate } from './template';
import { datasetKeysOnDisk, templateFacts } from './template-facts';
import type { LintDiagnostic } from './types';
import { ConfigIndex, configRefs } from './workspace';

export interface FileDiagnostics {
  file: string;
  diagnostics: LintDiagnostic[];
}

export interface HeadlessOptions {
  /** A config to lint datasets and templates against (else: the first config under `cwd` that names them). */
  config?: string | null;
  cwd: string;
  env: NodeJS.ProcessEnv;
  log?: (message: string) => void;
}

export async function lintPath(target: string, options: HeadlessOptions): Promise<FileDiagnostics[]> {
  const file = path.resolve(options.cwd, target);
  const log = options.log ?? (() => {});
  const text = readFileText(file);
  if (text === null) throw new Error(`cannot read ${file}`);
  const index = new ConfigIndex(() => [options.cwd], readFileText);
  const explicit = options.config ? path.resolve(options.cwd, options.config) : null;
  if (explicit) index.update(explicit);
  const kind = kindOf(file, text);
  if (kind === 'config') {
    const out: FileDiagnostics[] = [{ file, diagnostics: lintConfig(text, file, { env: options.env, log }).diagnostics }];
    const refs = configRefs(text, file);
    if (refs?.template && fs.existsSync(refs.template)) out.push(await lintTemplateFile(refs.template, [refs], options));
    for (const data of [refs?.train, refs?.validation, refs?.test]) {
      if (data && fs.existsSync(data) && !out.some((o) => o.file === data)) out.push(await lintDataset(data, file, options));
    }
    return out;
  }
  if (kind === 'template') {
    const refs = explicit ? [configRefs(readFileText(explicit) ?? '', explicit)].filter((r) => r !== null) : index.configsFor(file).filter((r) => r.template === file);
    return [await lintTemplateFile(file, refs, options)];
  }
  if (kind === 'dataset') {
    const configFile = explicit ?? index.configsFor(file).find((r) => [r.train, r.validation, r.test].includes(file))?.configFile ?? null;
    return [await lintDataset(file, configFile, options)];
  }
  throw new Error(`${target} is not a dataset (.jsonl), a template (.prompt.yaml) or a fine-tune config (YAML with model, data, template)`);
}

async function lintTemplateFile(file: string, refs: Parameters<typeof templateFacts>[0], options: HeadlessOptions): Promise<FileDiagnostics> {
  const facts = await templateFacts(refs, readFileText, (f) => datasetKeysOnDisk(f, readFileText), options.env);
  return { file, diagnostics: lintTemplate(readFileText(file) ?? '', file, { ...facts, log: options.log ?? (() => {}) }) };
}

async function lintDataset(file: string, configFile: string | null, options: HeadlessOptions): Promise<FileDiagnostics> {
  const bytes = fs.readFileSync(file);
  const raw = rawFacts(bytes);
  const text = new TextDecoder('utf-8').decode(bytes);
  const ctx = await datasetContext(file, configFile, { readText: readFileText, log: options.log ?? (() => {}), env: options.env });
  const result = await lintJsonl(text, ctx, { raw });
  return { file, diagnostics: result?.diagnostics ?? [] };
}
