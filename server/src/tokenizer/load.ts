/**
 * The config model's real tokenizer, from local files only. A local model folder is used as is; a hub id
 * (microsoft/phi-2) is looked up in the Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)
 * and never downloaded. Byte-level BPE tokenizers (Phi, GPT-2, GPT-NeoX, Falcon, Llama 3, Qwen2) run through the
 * exact fast path in bpe.ts; any other tokenizer.json goes through @huggingface/transformers' AutoTokenizer with
 * `env.allowRemoteModels = false` (needs tokenizer_config.json beside tokenizer.json).
 *
 * Counting contract (the engine tokenizes the same way): prompt = the tokenizer's default special tokens before
 * the text (BOS where the tokenizer adds one; none for Phi-2) + the prompt's tokens; response = the response's
 * tokens + EOS. Prompt and response are tokenized separately, so the loss boundary is a token boundary.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ByteLevelBpe } from './bpe';

export interface Tokenizer {
  /** How it tokenizes, for messages: 'byte-level BPE (tokenizer.json)' or 'transformers.js AutoTokenizer'. */
  readonly engine: string;
  /** Folder the files came from. */
  readonly dir: string;
  /** Token ids of text, no special tokens added. */
  encode(text: string): number[];
  /** encode(text).length, faster. */
  count(text: string): number;
  /** The text of each token, for display. */
  tokenTexts(ids: readonly number[]): string[];
  /** Prepended to every prompt by the tokenizer's defaults (Llama's BOS), or null. */
  readonly bosId: number | null;
  /** Appended after every response, or null when the tokenizer has no EOS. */
  readonly eosId: number | null;
  readonly eosToken: string | null;
}

export type TokenizerLoad = { ok: true; tokenizer: Tokenizer } | { ok: false; reason: string };

/** A local model folder for `model` (absolute, or relative to `baseDir`), or why there is none. */
export function resolveModelDir(model: string, baseDir: string, env: NodeJS.ProcessEnv = process.env): { dir: string } | { reason: string } {
  const expanded = model.startsWith('~') ? path.join(env.HOME ?? os.homedir(), model.slice(1)) : model;
  const local = path.resolve(baseDir, expanded);
  if (isDir(local)) return { dir: local };
  if (/^[\w.-]+\/[\w.-]+$/.test(model)) {
    const caches = [
      env.HF_HUB_CACHE,
      env.HF_HOME ? path.join(env.HF_HOME, 'hub') : undefined,
      path.join(env.HOME ?? os.homedir(), '.cache', 'huggingface', 'hub'),
    ].filter((c): c is string => !!c);
    for (const cache of caches) {
      const repo = path.join(cache, `models--${model.replace('/', '--')}`);
      const snapshot = newestSnapshot(repo);
      if (snapshot) return { dir: snapshot };
    }
    return { reason: `${model} is not a local folder and is not in the Hugging Face cache (${caches.join(', ')}); set \`model\` to a local copy` };
  }
  return { reason: `model folder not found: ${local}` };
}

function newestSnapshot(repo: string): string | null {
  try {
    const ref = fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim();
    const dir = path.join(repo, 'snapshots', ref);
    if (isDir(dir)) return dir;
  } catch {
    // no refs/main: take any snapshot with a tokenizer
  }
  try {
    for (const name of fs.readdirSync(path.join(repo, 'snapshots'))) {
      const dir = path.join(repo, 'snapshots', name);
      if (fs.existsSync(path.join(dir, 'tokenizer.json'))) return dir;
    }
  } catch {
    return null;
  }
  return null;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

const loaded = new Map<string, { stamp: string; result: Promise<TokenizerLoad> }>();

/** Loads (once per folder and file time) the tokenizer of `model`; never throws. */
export function loadTokenizer(model: string, baseDir: string, env: NodeJS.ProcessEnv = process.env): Promise<TokenizerLoad> {
  const where = resolveModelDir(model, baseDir, env);
  if ('reason' in where) return Promise.resolve({ ok: false, reason: where.reason });
  const dir = where.dir;
  const stamp = ['tokenizer.json', 'tokenizer_config.json'].map((f) => mtime(path.join(dir, f))).join('/');
  const hit = loaded.get(dir);
  if (hit && hit.stamp === stamp) return hit.result;
  const result = loadFrom(dir).catch((error: unknown) => ({ ok: false as const, reason: `cannot load the tokenizer in ${dir}: ${(error as Error).message}` }));
  loaded.set(dir, { stamp, result });
  return result;
}

function mtime(file: string): string {
  try {
    return String(fs.statSync(file).mtimeMs);
  } catch {
    return 'none';
  }
}

interface TokenizerConfigJson {
  eos_token?: string | { content: string } | null;
  bos_token?: string | { content: string } | null;
  add_bos_token?: boolean;
}

async function loadFrom(dir: string): Promise<TokenizerLoad> {
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const configFile = path.join(dir, 'tokenizer_config.json');
  if (!fs.existsSync(tokenizerFile)) return { ok: false, reason: `no tokenizer.json in ${dir}` };
  if (!fs.existsSync(configFile)) return { ok: false, reason: `no tokenizer_config.json beside tokenizer.json in ${dir}` };
  const json = JSON.parse(await fs.promises.readFile(tokenizerFile, 'utf8'));
  const config = JSON.parse(await fs.promises.readFile(configFile, 'utf8')) as TokenizerConfigJson;
  const tokenName = (t: TokenizerConfigJson['eos_token']): string | null => (typeof t === 'string' ? t : (t?.content ?? null));
  const eosToken = tokenName(config.eos_token);
  const bosToken = tokenName(config.bos_token);
  const bpe = ByteLevelBpe.fromTokenizerJson(json);
  if (bpe) {
    const eosId = eosToken === null ? null : bpe.idOf(eosToken);
    return {
      ok: true,
      tokenizer: {
        engine: 'byte-level BPE (tokenizer.json)',
        dir,
        encode: (text) => bpe.encode(text),
        count: (text) => bpe.count(text),
        tokenTexts: (ids) => bpe.tokenTexts(ids),
        bosId: defaultBos(json, config, bosToken, (t) => bpe.idOf(t)),
        eosId,
        eosToken: eosId === null ? null : eosToken,
      },
    };
  }
  return loadWithTransformers(dir, eosToken);
}

/** The BOS the tokenizer adds by default: add_bos_token, or a TemplateProcessing that starts with a special token. */
function defaultBos(json: any, config: TokenizerConfigJson, bosToken: string | null, idOf: (t: string) => number | null): number | null {
  if (config.add_bos_token === true && bosToken !== null) return idOf(bosToken);
  if (config.add_bos_token === false) return null;
  const processors = json.post_processor?.type === 'Sequence' ? json.post_processor.processors : [json.post_processor];
  for (const p of processors ?? []) {
    if (p?.type !== 'TemplateProcessing') continue;
    const first = p.single?.[0]?.SpecialToken?.id;
    if (typeof first === 'string') return p.special_tokens?.[first]?.ids?.[0] ?? idOf(first);
  }
  return null;
}

async function loadWithTransformers(dir: string, eosToken: string | null): Promise<TokenizerLoad> {
  const { AutoTokenizer, env } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(dir) + path.sep;
  const tok = await AutoTokenizer.from_pretrained(path.basename(dir));
  const plain = tok.encode('', { add_special_tokens: false });
  const withSpecial = tok.encode('', { add_special_tokens: true });
  const bosId = withSpecial.length > plain.length ? (withSpecial[0] ?? null) : null;
  const eosId = eosToken === null ? null : (tok.get_vocab().get(eosToken) ?? null);
  return {
    ok: true,
    tokenizer: {
      engine: 'transformers.js AutoTokenizer',
      dir,
      encode: (text) => tok.encode(text, { add_special_tokens: false }),
      count: (text) => tok.encode(text, { add_special_tokens: false }).length,
      tokenTexts: (ids) => ids.map((id) => tok.decode([id], { skip_special_tokens: false })),
      bosId,
      eosId,
      eosToken: eosId === null ? null : eosToken,
    },
  };
}
