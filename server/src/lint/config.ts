/**
 * Lints a fine-tune config: the config loader's problems (YAML, JSON Schema, missing files — server/src/config),
 * then cross-checks on the validated config (target modules against the model's architecture, sane ranges,
 * quantization without CUDA).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMap, isNode, isScalar, LineCounter, parseDocument } from 'yaml';
import type { ResolvedConfig } from '../../../protocol/config';
import type { ConfigError } from '../config/errors';
import { loadConfigText } from '../config/load';
import { resolveModelDir } from '../tokenizer/load';
import { chatTemplate } from './config-rules/chat-template';
import { cuda } from './config-rules/cuda';
import { evaluation } from './config-rules/evaluation';
import { ranges } from './config-rules/ranges';
import { targetModules } from './config-rules/target-modules';
import { runFailureDiagnostic, type RunFailure } from './run-failure';
import type { ConfigLintInput, ConfigRule } from './config-rules/types';
import { LineIndex, span, type LintDiagnostic, type Span } from './types';

export const configRules: readonly ConfigRule[] = [targetModules, ranges, cuda, evaluation, chatTemplate];

export interface ConfigLintOptions {
  env?: NodeJS.ProcessEnv;
  runFailure?: RunFailure | null;
  /** Known CUDA availability (the engine's environment report); detected from the machine otherwise. */
  cuda?: { available: boolean; how: string } | null;
  log: (message: string) => void;
}

export interface ConfigLintResult {
  diagnostics: LintDiagnostic[];
  /** The validated config, when it loaded. */
  config: ResolvedConfig | null;
}

export function lintConfig(text: string, file: string, options: ConfigLintOptions): ConfigLintResult {
  const index = new LineIndex(text);
  const loaded = loadConfigText(text, file, { env: options.env });
  if (!loaded.ok) return { diagnostics: loaded.errors.map((e) => fromConfigError(e, index)), config: null };
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  // The value's range; for an absent key (a default applies), the key of the nearest mapping that is written.
  const rangeOf = (segments: readonly (string | number)[]): Span => {
    const node = doc.getIn(segments, true);
    if (isNode(node) && node.range) return index.span(node.range[0], node.range[1]);
    for (let n = segments.length - 1; n > 0; n--) {
      const parent = n === 1 ? doc.contents : doc.getIn(segments.slice(0, n - 1), true);
      if (!isMap(parent)) continue;
      const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === segments[n - 1]);
      if (pair && isScalar(pair.key) && pair.key.range) return index.span(pair.key.range[0], pair.key.range[1]);
    }
    return span(0, 0, index.lineLength(0));
  };
  const input: ConfigLintInput = {
    file,
    config: loaded.config,
    doc,
    rangeOf,
    modelConfig: readModelConfig(loaded.config.model, path.dirname(file), options.env),
    modelDir: modelDir(loaded.config.model, path.dirname(file), options.env),
    cuda: options.cuda ?? detectCuda(options.env ?? process.env),
  };
  const diagnostics: LintDiagnostic[] = [];
  for (const rule of configRules) {
    try {
      rule.check(input, (d) => diagnostics.push(d));
    } catch (error) {
      options.log(`config rule ${rule.id} crashed: ${(error as Error).stack ?? String(error)}`);
      diagnostics.push({ range: span(0, 0, 0), severity: 'error', code: 'lint/internal', message: `internal error in lint rule ${rule.id}: ${(error as Error).message} (see the log)` });
    }
  }
  if (options.runFailure) diagnostics.push(runFailureDiagnostic(options.runFailure, doc, rangeOf));
  diagnostics.sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
  return { diagnostics, config: loaded.config };
}

function fromConfigError(e: ConfigError, index: LineIndex): LintDiagnostic {
  const line = Math.max(0, e.line - 1);
  const character = Math.max(0, e.column - 1);
  const lineText = index.text.split('\n')[line] ?? '';
  const token = (/^[^\s,{}[\]]+/.exec(lineText.slice(character))?.[0] ?? '').replace(/:$/, '');
  const end = token ? character + token.length : Math.max(character, index.lineLength(line));
  const code = e.message.startsWith('YAML') ? 'config/yaml' : /not found|is a folder|must be a model folder/.test(e.message) ? 'config/missing-file' : 'config/schema';
  return { range: span(line, character, end), severity: 'error', code, message: e.field ? `${e.field}: ${e.message}` : e.message };
}

function modelDir(model: string, baseDir: string, env?: NodeJS.ProcessEnv): string | null {
  const where = resolveModelDir(model, baseDir, env);
  return 'dir' in where ? where.dir : null;
}

function readModelConfig(model: string, baseDir: string, env?: NodeJS.ProcessEnv): ConfigLintInput['modelConfig'] {
  const where = resolveModelDir(model, baseDir, env);
  if ('reason' in where) return { reason: where.reason };
  try {
    return { json: JSON.parse(fs.readFileSync(path.join(where.dir, 'config.json'), 'utf8')), dir: where.dir };
  } catch (error) {
    return { reason: `cannot read ${path.join(where.dir, 'config.json')}: ${(error as Error).message}` };
  }
}

/** CUDA on this machine: QLORA_STUDIO_CUDA=0|1 decides; else the NVIDIA driver's /proc entry or nvidia-smi on PATH. */
export function detectCuda(env: NodeJS.ProcessEnv): { available: boolean; how: string } {
  const forced = env.QLORA_STUDIO_CUDA;
  if (forced === '0' || forced === '1') return { available: forced === '1', how: `QLORA_STUDIO_CUDA=${forced}` };
  if (fs.existsSync('/proc/driver/nvidia/version')) return { available: true, how: 'NVIDIA driver found' };
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, process.platform === 'win32' ? 'nvidia-smi.exe' : 'nvidia-smi'))) return { available: true, how: 'nvidia-smi found' };
  }
  return { available: false, how: 'no NVIDIA driver and no nvidia-smi on PATH' };
}
