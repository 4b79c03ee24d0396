/**
 * Which configs name which files. A dataset or template opened in the editor is linted against every config
 * in the workspace that references it (the first, by path, when several do). Configs are found by scanning the
 * workspace folders (bounded depth, skipping node_modules, .git, runs, virtual environments) for YAML files with
 * `data:` and `template:`; the raw YAML is read (not the validated config), so a config with errors still maps
 * its files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';

const SKIP = new Set(['node_modules', '.git', 'runs', '.venv', 'venv', '__pycache__', 'dist', 'out', '.cache', '.carry']);
const MAX_DEPTH = 5;
const MAX_FILES = 5000;

export interface ConfigRefs {
  configFile: string;
  train: string | null;
  validation: string | null;
  test: string | null;
  template: string | null;
  /** `data.format` as written (null when absent: auto). */
  format: string | null;
}

/** The files a config names, resolved against its folder; null when the text is not a fine-tune config. */
export function configRefs(text: string, configFile: string): ConfigRefs | null {
  if (!/^data\s*:/m.test(text) && !/^template\s*:/m.test(text)) return null;
  let data: unknown;
  try {
    data = parse(text);
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const d = data as { data?: Record<string, unknown>; template?: unknown; model?: unknown };
  if (d.model === undefined && d.data === undefined) return null;
  const dir = path.dirname(configFile);
  const resolve = (v: unknown): string | null => (typeof v === 'string' && v ? path.resolve(dir, v) : null);
  return {
    configFile,
    train: resolve(d.data?.train),
    validation: resolve(d.data?.validation),
    test: resolve(d.data?.test),
    template: resolve(d.template),
    format: typeof d.data?.format === 'string' ? d.data.format : null,
  };
}

export function isConfigFileName(file: string): boolean {
  return /\.ya?ml$/i.test(file) && !/\.prompt\.ya?ml$/i.test(file);
}

export function isTemplateFileName(file: string): boolean {
  return /\.prompt\.ya?ml$/i.test(file);
}

export class ConfigIndex {
  private refs = new Map<string, ConfigRefs>();
  private scanned = false;

  constructor(
    private readonly roots: () => string[],
    private readonly readText: (file: string) => string | null,
  ) {}

  /** Configs referencing `file` as data or template, sorted by path. */
  configsFor(file: string): ConfigRefs[] {
    this.ensureScanned();
    const target = path.resolve(file);
    return [...this.refs.values()]
      .filter((r) => [r.train, r.validation, r.test, r.template].includes(target))
      .sort((a, b) => a.configFile.localeCompare(b.configFile));
  }

  /** Re-reads one config (on open, change or save); forgets it when it is no longer a config. */
  update(configFile: string, text: string | null = this.readText(configFile)): void {
    if (!isConfigFileName(configFile)) return;
    const refs = text === null ? null : configRefs(text, configFile);
    if (refs) this.refs.set(configFile, refs);
    else this.refs.delete(configFile);
  }

  /** The next lookup re-scans the workspace (open configs keep their buffer's version). */
  invalidate(): void {
    this.scanned = false;
  }

  private ensureScanned(): void {
    if (this.scanned) return;
    this.scanned = true;
    const previous = this.refs;
    this.refs = new Map();
    let budget = MAX_FILES;
    const walk = (dir: string, depth: number): void => {
      if (depth > MAX_DEPTH || budget <= 0) return;
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (budget-- <= 0) return;
        const full = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (!SKIP.has(e.name) && !e.name.startsWith('.')) walk(full, depth + 1);
        } else if (e.isFile() && isConfigFileName(e.name)) this.update(full);
      }
    };
    for (const root of this.roots()) walk(root, 0);
    // Configs found before (opened ones outside the roots, or --config) stay known.
    for (const [file, refs] of previous) if (!this.refs.has(file) && this.readText(file) !== null) this.refs.set(file, refs);
  }
}
