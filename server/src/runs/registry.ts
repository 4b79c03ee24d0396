/**
 * The runs folder: one sub-folder per fine-tune, its files named and typed in protocol/run-folder.ts. The engine
 * writes run.json, metrics, checkpoints and the adapter; this side names new runs, lists them and finds what a
 * resume needs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunFolder, type RunRecord } from '../../../protocol/run-folder';

export interface RunEntry {
  /** Folder name (the run id). */
  id: string;
  dir: string;
  /** Parsed run.json; null when it is missing or unreadable (see `problem`). */
  record: RunRecord | null;
  problem: string | null;
}

export interface Checkpoint {
  step: number;
  path: string;
}

export function defaultRunsDir(cwd: string = process.cwd()): string {
  return path.resolve(cwd, 'runs');
}

/** `YYYYMMDD-HHMMSS-<config basename>` (local time), with `-2`, `-3`… when that folder already exists. */
export function newRunId(configFile: string, runsDir: string, now: Date = new Date()): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const stamp =
    `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-` +
    `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  const base = path.basename(configFile).replace(/\.ya?ml$/i, '').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '') || 'run';
  const id = `${stamp}-${base}`;
  if (!fs.existsSync(path.join(runsDir, id))) return id;
  for (let n = 2; ; n++) {
    const candidate = `${id}-${n}`;
    if (!fs.existsSync(path.join(runsDir, candidate))) return candidate;
  }
}

export function readRun(dir: string): RunEntry {
  const id = path.basename(dir);
  const file = path.join(dir, RunFolder.record);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { id, dir, record: null, problem: `no ${RunFolder.record}` };
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    const raw = parsed as Partial<RunRecord>;
    const record: RunRecord = {
      runId: typeof raw.runId === 'string' ? raw.runId : id,
      status: raw.status ?? 'running',
      step: typeof raw.step === 'number' ? raw.step : 0,
      totalSteps: typeof raw.totalSteps === 'number' ? raw.totalSteps : 0,
      startedAt: raw.startedAt ?? null,
      endedAt: raw.endedAt ?? null,
      data: raw.data ?? null,
      adapterPath: raw.adapterPath ?? null,
      error: raw.error ?? null,
      best: raw.best && typeof raw.best === 'object' && typeof raw.best.step === 'number' ? raw.best : null,
      picks: raw.picks ?? null,
      stopReason: typeof raw.stopReason === 'string' ? raw.stopReason : null,
    };
    return { id, dir, record, problem: null };
  } catch (error) {
    return { id, dir, record: null, problem: `unreadable ${RunFolder.record}: ${(error as Error).message}` };
  }
}

/** Every run folder (a folder with run.json or config.yaml), newest first. */
export function listRuns(runsDir: string): RunEntry[] {
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(runsDir, { withFileTypes: true });
  } catch {
    return [];
  }
  const runs: RunEntry[] = [];
  for (const entry of names) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = path.join(runsDir, entry.name);
    if (!fs.existsSync(path.join(dir, RunFolder.record)) && !fs.existsSync(path.join(dir, RunFolder.config))) continue;
    runs.push(readRun(dir));
  }
  const key = (r: RunEntry): string => r.record?.startedAt ?? '';
  return runs.sort((a, b) => key(b).localeCompare(key(a)) || b.id.localeCompare(a.id));
}

/**
 * The newest complete checkpoint: `checkpoints/step-N` folders only. Anything else there (a `step-N.tmp`
 * being written, `.tmp-…` left by a crash) is not a checkpoint — writes are temp folder + rename.
 */
export function newestCheckpoint(runDir: string): Checkpoint | null {
  const dir = path.join(runDir, RunFolder.checkpoints);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return null;
  }
  let best: Checkpoint | null = null;
  for (const entry of entries) {
    const match = /^step-(\d+)$/.exec(entry.name);
    if (!match || !entry.isDirectory()) continue;
    const step = Number(match[1]);
    if (!best || step > best.step) best = { step, path: path.join(dir, entry.name) };
  }
  return best;
}

export type ResumeTarget =
  | { ok: true; runDir: string; runId: string; configFile: string; checkpoint: Checkpoint; record: RunRecord | null }
  | { ok: false; message: string };

/** What `--resume <run-dir>` needs: the folder, its saved config.yaml and a checkpoint to continue from. */
export function resumeTarget(runDirArg: string, cwd: string = process.cwd()): ResumeTarget {
  const runDir = path.resolve(cwd, runDirArg);
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) {
    return { ok: false, message: `run folder not found: ${runDir}` };
  }
  const configFile = path.join(runDir, RunFolder.config);
  if (!fs.existsSync(configFile)) {
    return { ok: false, message: `${runDir} has no ${RunFolder.config} (the config as run); is it a run folder?` };
  }
  const checkpoint = newestCheckpoint(runDir);
  if (!checkpoint) {
    return { ok: false, message: `${runDir} has no checkpoint to resume from (${RunFolder.checkpoints}/step-N)` };
  }
  const entry = readRun(runDir);
  return { ok: true, runDir, runId: entry.record?.runId ?? path.basename(runDir), configFile, checkpoint, record: entry.record };
}
