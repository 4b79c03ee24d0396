/** What a template is checked against: the field names of its configs' datasets and the config model's EOS. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer } from '../tokenizer/load';
import type { ConfigRefs } from './workspace';

export interface TemplateFacts {
  fields: { names: Set<string>; source: string } | null;
  /** A string, null (the tokenizer has no EOS), or undefined (no config, or its tokenizer is unavailable). */
  eosToken: string | null | undefined;
}

const keyCache = new Map<string, { stamp: string; keys: Set<string> }>();
const MAX_RECORDS = 5000;

/** Field names of the first 5,000 records of a dataset on disk (cached by modification time). */
export function datasetKeysOnDisk(file: string, readText: (file: string) => string | null): Set<string> | null {
  let stamp: string;
  try {
    stamp = String(fs.statSync(file).mtimeMs);
  } catch {
    return null;
  }
  const hit = keyCache.get(file);
  if (hit && hit.stamp === stamp) return hit.keys;
  const text = readText(file);
  if (text === null) return null;
  const keys = new Set<string>();
  let count = 0;
  let start = 0;
  while (start < text.length && count < MAX_RECORDS) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).replace(/^\uFEFF/, '');
    start = end + 1;
    if (!line.trim()) continue;
    count++;
    try {
      const v = JSON.parse(line);
      if (v && typeof v === 'object' && !Array.isArray(v)) for (const k of Object.keys(v)) keys.add(k);
    } catch {
      // invalid lines are that file's own diagnostics
    }
  }
  keyCache.set(file, { stamp, keys });
  return keys;
}

export async function templateFacts(
  refs: readonly ConfigRefs[],
  readText: (file: string) => string | null,
  keysOf: (file: string) => Set<string> | null,
  env: NodeJS.ProcessEnv,
): Promise<TemplateFacts> {
  if (refs.length === 0) return { fields: null, eosToken: undefined };
  const names = new Set<string>();
  const sources: string[] = [];
  for (const r of refs) {
    for (const data of [r.train, r.validation, r.test]) {
      if (!data) continue;
      const keys = keysOf(data);
      if (keys === null) continue;
      for (const k of keys) names.add(k);
      sources.push(path.basename(data));
    }
  }
  let eosToken: string | null | undefined;
  const configText = readText(refs[0]!.configFile);
  const model = configText === null ? null : /^model\s*:\s*["']?([^"'#\n]+?)["']?\s*(#.*)?$/m.exec(configText)?.[1];
  if (model) {
    const tok = await loadTokenizer(model.trim(), path.dirname(refs[0]!.configFile), env);
    if (tok.ok) eosToken = tok.tokenizer.eosToken;
  }
  return { fields: sources.length ? { names, source: [...new Set(sources)].join(', ') } : null, eosToken };
}
