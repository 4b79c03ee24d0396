/**
 * Summarize Selection: the run's own config and template, the selected text bound to the template's input
 * variable (the prompt's first variable that the response does not use: `dialogue` for DialogSum) or, for a chat
 * run, sent as one user turn through its chat template, generated
 * greedily with the run's adapter and, when asked, with the base model for comparison.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ResolvedConfig } from '../../../protocol/config';
import { Generate, GenerateDidStream, type DownloadProgress, type GenerateParams } from '../../../protocol/engine';
import * as L from '../../../protocol/lsp';
import { loadConfig } from '../config/load';
import type { EngineSupervisor } from '../engine-client/supervise';
import { AdapterConfigFile, RunFolder } from '../../../protocol/run-folder';
import { loadChatTemplate } from '../templates/chat';
import { compilePart, renderPart } from '../templates/jinja';
import { onDownload } from './downloads';
import { problem, problemFromConfig, problemFromError } from './problems';

export interface RunForGeneration {
  config: ResolvedConfig;
  adapter: string;
}

export function runForGeneration(runDir: string): { ok: true; run: RunForGeneration } | { ok: false; problem: L.JobProblem } {
  const configFile = path.join(runDir, RunFolder.config);
  if (!fs.existsSync(configFile)) {
    return { ok: false, problem: problem(L.JobErrorCodes.RunNotUsable, `${runDir} has no ${RunFolder.config}; is it a run folder?`, 'Pick a completed run.') };
  }
  const adapter = path.join(runDir, RunFolder.adapter);
  if (!fs.existsSync(path.join(adapter, AdapterConfigFile))) {
    return {
      ok: false,
      problem: problem(L.JobErrorCodes.RunNotUsable, `The run ${path.basename(runDir)} has no adapter yet (it is written when training completes).`, 'Pick a completed run, or wait for this one to finish.'),
    };
  }
  const loaded = loadConfig(configFile);
  if (!loaded.ok) return { ok: false, problem: problemFromConfig(loaded.errors, runDir) };
  return { ok: true, run: { config: loaded.config, adapter } };
}

/** The template variable the input binds to, and the prompt as the model will see it. */
export function bindInput(templateFile: string, text: string): { variable: string; record: Record<string, string>; prompt: string } | { problem: L.JobProblem } {
  let doc: Record<string, unknown>;
  try {
    doc = parseYaml(fs.readFileSync(templateFile, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    return { problem: problem(L.JobErrorCodes.RunNotUsable, `Cannot read the template ${templateFile}: ${(error as Error).message}`, null, { file: templateFile }) };
  }
  const prompt = compilePart(typeof doc?.prompt === 'string' ? doc.prompt : '');
  const response = compilePart(typeof doc?.response === 'string' ? doc.response : '');
  if (!prompt.ok) return { problem: problem(L.JobErrorCodes.RunNotUsable, `The template's prompt does not compile: ${prompt.problems[0]?.message ?? '?'}`, null, { file: templateFile }) };
  const responseVars = new Set(response.ok ? response.variables.map((v) => v.name) : []);
  const inputs = prompt.variables.map((v) => v.name).filter((n) => !responseVars.has(n));
  const variable = inputs[0] ?? prompt.variables[0]?.name;
  if (!variable) return { problem: problem(L.JobErrorCodes.RunNotUsable, `The template's prompt uses no variable to put the selection in.`, null, { file: templateFile }) };
  const record: Record<string, string> = {};
  for (const name of inputs) record[name] = '';
  record[variable] = text;
  let rendered: string;
  try {
    rendered = renderPart(prompt, record);
  } catch (error) {
    return { problem: problem(L.JobErrorCodes.RunNotUsable, `The template's prompt does not render: ${(error as Error).message}`, null, { file: templateFile }) };
  }
  return { variable, record, prompt: rendered };
}

/**
 * A chat run's input: the selection as one user turn, in the run's record format (the engine reads it as it read
 * the training records), and the prompt its chat template makes of it.
 */
export function bindChatInput(config: ResolvedConfig, text: string): { variable: null; record: Record<string, unknown>; prompt: string } | { problem: L.JobProblem } {
  const loaded = loadChatTemplate(config.chat_template, path.isAbsolute(config.model) ? config.model : null);
  if (!loaded.ok) return { problem: problem(L.JobErrorCodes.RunNotUsable, loaded.message, null, config.chat_template ? { file: config.chat_template } : {}) };
  const record: Record<string, unknown> =
    config.data.format === 'sharegpt' ? { conversations: [{ from: 'human', value: text }] }
    : config.data.format === 'alpaca' ? { instruction: text }
    : { messages: [{ role: 'user', content: text }] };
  try {
    return { variable: null, record, prompt: loaded.template.prompt([{ role: 'user', content: text }]) };
  } catch (error) {
    return { problem: problem(L.JobErrorCodes.RunNotUsable, (error as Error).message, null, config.chat_template ? { file: config.chat_template } : {}) };
  }
}

/**
 * Summarizes the selection; with params.streamId, `stream` gets the text as it is generated; `download` gets the bytes
 * while the base model downloads (a hub model not in the cache), which `signal` stops (the bytes that arrived are
 * kept for the next summary).
 */
export async function summarize(
  engine: EngineSupervisor,
  params: L.GenerateSummarizeParams,
  stream: (update: L.GenerateDidStreamParams) => void = () => {},
  download: (progress: DownloadProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<L.GenerateSummarizeResult> {
  const none = { variable: null, prompt: null, adapter: null, base: null, seconds: 0 };
  const found = runForGeneration(params.runDir);
  if (!found.ok) return { ...none, problem: found.problem };
  const { config } = found.run;
  const bound = config.template === null ? bindChatInput(config, params.text) : bindInput(config.template, params.text);
  if ('problem' in bound) return { ...none, problem: bound.problem };
  // Comparing with the base runs both in one batch (two rows, one decoding loop), not two requests.
  const request: GenerateParams = {
    config: found.run.config,
    adapter: found.run.adapter,
    records: [bound.record],
    maxNewTokens: params.maxNewTokens,
    temperature: 0,
    topP: 1,
    seed: 42,
    batchSize: 1,
    alsoBase: params.compareWithBase,
    ...(params.streamId ? { streamId: params.streamId } : {}),
  };
  const streamId = params.streamId;
  const streaming = streamId
    ? engine.onNotification(GenerateDidStream, (u) => {
        if (u.streamId === streamId) stream({ streamId, base: u.base, text: u.text, done: u.done });
      })
    : null;
  const downloading = onDownload(engine, config.model, download);
  try {
    const result = await engine.request(Generate, request, signal);
    return {
      variable: bound.variable,
      prompt: bound.prompt,
      adapter: result.completions[0] ?? null,
      base: params.compareWithBase ? (result.baseCompletions?.[0] ?? null) : null,
      seconds: result.seconds,
      problem: null,
    };
  } catch (error) {
    const cancelled = signal?.aborted ? problem(L.JobErrorCodes.Cancelled, 'Summary cancelled.', null) : null;
    return { ...none, variable: bound.variable, prompt: bound.prompt, problem: cancelled ?? problemFromError(error) };
  } finally {
    streaming?.dispose();
    downloading.dispose();
  }
}
