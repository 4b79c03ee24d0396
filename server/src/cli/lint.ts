/** `qlora-studio lint`: the editor's diagnostics for a dataset, template or config, as text or JSON; exit 1 on errors. */
import * as path from 'node:path';
import { displayPath } from '../config/errors';
import { lintPath } from '../lint/headless';
import { ExitCode, parseCommandArgs, UsageError, type CliContext, type Command } from './subcommand';

const usage = `Usage: qlora-studio lint <file.jsonl | config.yaml | template.prompt.yaml> [options]

Check a dataset, a prompt template or a fine-tune config the way the editor does: malformed JSONL, fields the
template needs, duplicates and leakage between splits, records over max_length (with the model's real
tokenizer), template pitfalls, config typos and impossible settings. A config also checks its template and data.
Datasets and templates are checked against --config, or the first config under the current folder that names them.

Options:
  --config <file>   the fine-tune config to check a dataset or template against
  --json            print a JSON array of {file, line, column, endLine, endColumn, severity, code, message}
  -h, --help        show this help

Output: file:line:col severity code message (1-based). Exit status: 1 when any error is found, else 0.
`;

const options = {
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const lintCommand: Command = { name: 'lint', summary: 'check a dataset, template or config (as the editor does)', usage, run: runLint };

async function runLint(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, options);
  if (values.help) {
    ctx.stdout.write(usage);
    return ExitCode.Ok;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one file, got ${positionals.length}`);
  let results;
  try {
    results = await lintPath(positionals[0]!, { config: values.config ?? null, cwd: ctx.cwd, env: ctx.env, log: (m) => ctx.stderr.write(`${m}\n`) });
  } catch (error) {
    ctx.stderr.write(`qlora-studio lint: ${(error as Error).message}\n`);
    return ExitCode.BadInput;
  }
  const rows = results.flatMap(({ file, diagnostics }) =>
    diagnostics.map((d) => ({
      file: displayPath(file, ctx.cwd),
      line: d.range.start.line + 1,
      column: d.range.start.character + 1,
      endLine: d.range.end.line + 1,
      endColumn: d.range.end.character + 1,
      severity: d.severity,
      code: d.code,
      message: d.message,
    })),
  );
  if (values.json) ctx.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else {
    for (const r of rows) ctx.stdout.write(`${r.file}:${r.line}:${r.column} ${r.severity} ${r.code} ${r.message}\n`);
    const count = (s: string): number => rows.filter((r) => r.severity === s).length;
    const files = results.map((r) => displayPath(r.file, ctx.cwd)).join(', ');
    ctx.stderr.write(`${count('error')} error(s), ${count('warning')} warning(s), ${count('information') + count('hint')} note(s) in ${files || path.basename(positionals[0]!)}\n`);
  }
  return rows.some((r) => r.severity === 'error') ? ExitCode.Failed : ExitCode.Ok;
}
