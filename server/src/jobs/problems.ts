/**
 * Turns what can go wrong in a job into a JobProblem: a message the user can act on, and what to do. An engine
 * failure brings its own `remedy` (engine/qlora_engine/errors.py is the one home of those texts); the server's own
 * failures (no Python, untrusted workspace, a crashed engine, a run that cannot be used) say theirs here.
 */
import { JobErrorCodes, type JobProblem } from '../../../protocol/lsp';
import type { ConfigError } from '../config/errors';
import { howToFix, PythonNotFoundError } from '../engine-client/python';
import { EngineError } from '../engine-client/rpc';
import { EngineCrashedError } from '../engine-client/supervise';
import { repoRoot } from '../engine-client/paths';
import { UntrustedWorkspaceError } from './engine-host';

export function problem(code: number, message: string, fix: string | null = null, where: Partial<JobProblem> = {}): JobProblem {
  return { code, message, fix, ...where };
}

export function problemFromError(error: unknown): JobProblem {
  if (error instanceof UntrustedWorkspaceError) {
    return problem(JobErrorCodes.Untrusted, error.message, 'Trust this folder (Manage Workspace Trust) to train, evaluate or summarize; linting works without it.');
  }
  if (error instanceof PythonNotFoundError) {
    let fix: string;
    try {
      fix = `${howToFix(repoRoot())} Or run “QLoRA Studio: Set Up Engine Environment”, or set the qloraStudio.pythonPath setting.`;
    } catch {
      fix = 'Run “QLoRA Studio: Set Up Engine Environment”, or set the qloraStudio.pythonPath setting to a Python with torch.';
    }
    return problem(JobErrorCodes.NoPython, error.message, fix);
  }
  if (error instanceof EngineError) {
    const where: Partial<JobProblem> = {};
    if (error.file) where.file = error.file;
    if (error.line) where.line = error.line;
    if (error.field) where.field = error.field;
    return problem(error.code, error.message, error.remedy ?? null, where);
  }
  if (error instanceof EngineCrashedError) {
    return problem(
      JobErrorCodes.EngineFailed,
      error.message,
      'See the engine log (QLoRA Studio output). A missing package shows there; “Set Up Engine Environment” installs them.',
    );
  }
  return problem(JobErrorCodes.EngineFailed, error instanceof Error ? error.message : String(error), null);
}

export function problemFromConfig(errors: readonly ConfigError[], cwd: string): JobProblem {
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''})` : '';
  const where: Partial<JobProblem> = {};
  if (first.file) where.file = first.file;
  if (first.line) where.line = first.line;
  if (first.field) where.field = first.field;
  return problem(JobErrorCodes.ConfigInvalid, first.format(cwd) + more, 'Fix the config (its problems are also in the Problems panel), then start again.', where);
}
