/** `qlora-studio runs`: the runs folder at a glance (status, progress, adapter), newest first. */
import * as path from 'node:path';
import { displayPath } from '../config/errors';
import { defaultRunsDir, listRuns, newestCheckpoint } from '../runs/registry';
import { ExitCode, parseCommandArgs, UsageError, writeJson, type CliContext, type Command } from './subcommand';
import { table } from './output';

const usage = `Usage: qlora-studio runs [options]

List the fine-tune runs in the runs folder, newest first.

Options:
  --runs-dir <dir>   the runs folder (default: ./runs)
  --json             one JSON object per run, per line
  -h, --help         show this help
`;

const options = {
  'runs-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const runsCommand: Command = { name: 'runs', summary: 'list fine-tune runs and their status', usage, run: runRuns };

async function runRuns(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length) throw new UsageError(`unexpected argument: ${positionals[0]}`);
  const runsDir = values['runs-dir'] ? path.resolve(ctx.cwd, values['runs-dir']) : defaultRunsDir(ctx.cwd);
  const runs = listRuns(runsDir);
  if (values.json) {
    for (const run of runs) {
      writeJson(ctx.stdout, { id: run.id, dir: run.dir, ...run.record, problem: run.problem, checkpoint: newestCheckpoint(run.dir) });
    }
    return ExitCode.Ok;
  }
  if (runs.length === 0) {
    ctx.stdout.write(`No runs in ${displayPath(runsDir, ctx.cwd)}.\n`);
    return ExitCode.Ok;
  }
  const rows = [['run', 'status', 'step', 'started', 'adapter / checkpoint']];
  for (const run of runs) {
    const r = run.record;
    if (!r) {
      rows.push([run.id, '?', '', '', run.problem ?? '']);
      continue;
    }
    const checkpoint = newestCheckpoint(run.dir);
    const where = r.adapterPath ?? (checkpoint ? checkpoint.path : '');
    rows.push([run.id, r.status, `${r.step}/${r.totalSteps}`, r.startedAt ?? '', where ? displayPath(where, ctx.cwd) : '']);
  }
  ctx.stdout.write(`${table(rows)}\n`);
  return ExitCode.Ok;
}
