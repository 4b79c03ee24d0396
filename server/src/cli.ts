/** The `qlora-studio` bin: bundled to dist/cli.js (esbuild adds the shebang); `npx tsx server/src/cli.ts` from source. */
import { runCli } from './cli/main';
import { processContext } from './cli/subcommand';

runCli(process.argv.slice(2), processContext()).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`qlora-studio: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
