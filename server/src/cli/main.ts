/**
 * The CLI's one table of subcommands. To add one, write server/src/cli/<name>.ts exporting a `Command`
 * (name, summary, usage, run) and add it to `commands` below; help and dispatch follow from the table.
 */
import pkg from '../../../package.json';
import { ExitCode, UsageError, type CliContext, type Command } from './subcommand';
import { envCommand } from './env';
import { evalCommand } from './eval';
import { exportCommand } from './export';
import { importCommand } from './import';
import { lintCommand } from './lint';
import { planCommand } from './plan';
import { pullCommand } from './pull';
import { ROUGE_SUMMARY, ROUGE_USAGE, rougeCommand } from './rouge';
import { runsCommand } from './runs';
import { summarizeCommand } from './summarize';
import { trainCommand } from './train';

const rouge: Command = {
  name: 'rouge',
  summary: ROUGE_SUMMARY,
  usage: ROUGE_USAGE,
  run: (args, ctx) => rougeCommand(args, ctx),
};

export const commands: readonly Command[] = [trainCommand, evalCommand, summarizeCommand, exportCommand, planCommand, importCommand, pullCommand, envCommand, runsCommand, lintCommand, rouge];

export function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const list = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n');
  return `Usage: qlora-studio <command> [options]

Fine-tune causal language models with QLoRA on your own GPU, headless.

Commands:
${list}

Run \`qlora-studio <command> --help\` for a command's options.
Exit status: 0 success, 1 failure, 2 bad input, 130 cancelled.
`;
}

/** Runs one command line (without `node` and the script) and returns the exit status. */
export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined;
    ctx.stdout.write(topic ? topic.usage : usage());
    return name === undefined ? ExitCode.BadInput : ExitCode.Ok;
  }
  if (name === '--version' || name === '-v') {
    ctx.stdout.write(`${version()}\n`);
    return ExitCode.Ok;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    ctx.stderr.write(`qlora-studio: unknown command "${name}"\n\n${usage()}`);
    return ExitCode.BadInput;
  }
  try {
    return await command.run([...rest], ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      ctx.stderr.write(`qlora-studio ${command.name}: ${error.message}\n\n${command.usage}`);
      return ExitCode.BadInput;
    }
    ctx.stderr.write(`qlora-studio ${command.name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return ExitCode.Failed;
  }
}

function version(): string {
  return `qlora-studio ${pkg.version}`;
}
