/**
 * Builds the lint context of a dataset file from the config that names it (or the one passed with --config):
 * the validated config (server/src/config), its template or its chat format and chat template, the model's
 * tokenizer, and the other splits.
 */
import * as path from 'node:path';
import type { ResolvedConfig } from '../../../protocol/config';
import { loadConfigText } from '../config/load';
import { loadChatTemplate } from '../templates/chat';
import { parseTemplate } from '../templates/template';
import { loadTokenizer, resolveModelDir } from '../tokenizer/load';
import { configuredContext, otherSplits, roleOf, standaloneContext, type ChatSetup, type DatasetContext } from './jsonl/dataset-config';
import { configRefs } from './workspace';

export interface ContextSources {
  /** An open buffer's text, else the file on disk; null when unreadable. */
  readText: (file: string) => string | null;
  log: (message: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Line facts of an open, linted dataset (its keys serve the other splits' leakage check). */
  openFacts?: (file: string) => readonly { key: string | null; kind: string }[] | null;
}

export async function datasetContext(file: string | null, configFile: string | null, src: ContextSources): Promise<DatasetContext> {
  const alone = standaloneContext(file, src.log);
  if (!configFile) return alone;
  const text = src.readText(configFile);
  if (text === null) return { ...alone, configProblem: `cannot read the config ${configFile}` };
  const loaded = loadConfigText(text, configFile, { env: src.env });
  if (!loaded.ok) {
    const n = loaded.errors.length;
    return { ...alone, configProblem: `${path.basename(configFile)} has ${n} error${n === 1 ? '' : 's'} (see that file): template and token checks skipped` };
  }
  const config = loaded.config;
  const templateText = config.template === null ? null : src.readText(config.template);
  const template = config.template === null || templateText === null ? null : parseTemplate(templateText, config.template);
  const tok = await loadTokenizer(config.model, path.dirname(configFile), src.env);
  const chat = chatSetup(config, configFile, text, src.env);
  const ctx = configuredContext({
    file,
    role: file ? roleOf(config, file) : null,
    configFile,
    config,
    template,
    chat,
    tokenizer: tok.ok ? tok.tokenizer : null,
    tokenizerProblem: tok.ok ? null : tok.reason,
    log: src.log,
  });
  if (config.template && template && template.problems.length > 0 && !ctx.variables) {
    ctx.configProblem = `the template ${path.basename(config.template)} has errors (see that file): field and token checks skipped`;
  }
  ctx.others = otherSplits(ctx, src.readText, src.openFacts);
  return ctx;
}

/** The chat format and chat template of a config whose data is chat records; null for a prompt template. */
function chatSetup(config: ResolvedConfig, configFile: string, text: string, env: NodeJS.ProcessEnv | undefined): ChatSetup | null {
  const format = config.data.format;
  if (format === 'template') return null;
  const where = resolveModelDir(config.model, path.dirname(configFile), env);
  const loaded = loadChatTemplate(config.chat_template, 'dir' in where ? where.dir : null);
  return {
    format,
    detected: (configRefs(text, configFile)?.format ?? 'auto') === 'auto',
    template: loaded.ok ? loaded.template : null,
    problem: loaded.ok ? null : loaded.message,
  };
}
