/**
 * `qlora-studio rouge`: ROUGE of predictions against references from a JSONL file, with rouge_score 0.1.2's
 * numbers (see server/src/eval/rouge.ts), the mean per type and a seeded bootstrap interval.
 *
 * Self-contained: the dispatcher calls `rougeCommand(args, io)` with the arguments after `rouge`; ROUGE_SUMMARY and
 * ROUGE_USAGE are its lines for the command table and `--help`.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { bootstrapAggregate, meanScores, type AggregateScore } from '../eval/aggregate';
import { RougeScorer, type DefaultRougeType, type Score } from '../eval/rouge';

/** Anything with write(text): process.stdout/stderr (NodeJS.WritableStream), or the CLI's Output. */
export interface RougeIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export const ROUGE_SUMMARY = 'ROUGE-1/2/L/Lsum of predictions against references (rouge_score 0.1.2 numbers)';

export const ROUGE_USAGE = `Usage: qlora-studio rouge --input pairs.jsonl [--stemmer] [--sentence-split] [--json]

Scores each line {"prediction": "...", "references": ["...", ...]} (or "reference": "...") with rouge1, rouge2,
rougeL and rougeLsum exactly as Google's rouge_score 0.1.2 (what Hugging Face evaluate's "rouge" wraps): the
same tokenizer, Porter stemmer, multi-reference rule (best F per type) and arithmetic. Prints the mean
precision/recall/F per type and a bootstrap 95% interval of the mean F.

Options:
  -i, --input FILE          JSONL of pairs (required)
      --stemmer             Porter-stem tokens longer than 3 characters (evaluate's use_stemmer=True)
      --sentence-split      split texts into sentences for rougeLsum (rule-based, not nltk's Punkt: may
                            differ from rouge_score's split_summaries; without it, lines are sentences)
      --json                print {"per_example": [...], "mean": {...}, "bootstrap": {...}} instead of a table
      --seed N              bootstrap seed (default 0); numpy's unseeded resampling cannot be reproduced
      --bootstrap-samples N resamples (default 1000)
  -h, --help                this text

Exit status: 0 success, 2 bad arguments or bad input (each problem names the file, line and field).
`;

const MAX_REPORTED_ERRORS = 20;

interface Pair {
  prediction: string;
  references: string[];
}

class InputError extends Error {}

/** Runs `qlora-studio rouge` with the arguments after `rouge`; returns the exit status. */
export async function rougeCommand(argv: string[], io: RougeIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        input: { type: 'string', short: 'i' },
        stemmer: { type: 'boolean', default: false },
        'sentence-split': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        seed: { type: 'string', default: '0' },
        'bootstrap-samples': { type: 'string', default: '1000' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    return usageError(io, (error as Error).message);
  }
  if (values.help) {
    io.stdout.write(ROUGE_USAGE);
    return 0;
  }
  if (values.input === undefined) return usageError(io, '--input is required');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    return usageError(io, `--seed must be an integer from 0 to 4294967295, not "${values.seed}"`);
  }
  const nSamples = Number(values['bootstrap-samples']);
  if (!Number.isInteger(nSamples) || nSamples < 1) {
    return usageError(io, `--bootstrap-samples must be a positive integer, not "${values['bootstrap-samples']}"`);
  }

  let pairs: Pair[];
  try {
    pairs = parsePairs(values.input, await readInput(values.input));
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    io.stderr.write(`qlora-studio rouge: ${error.message}\n`);
    return 2;
  }

  const sentenceSplit = values['sentence-split'];
  if (sentenceSplit) {
    io.stderr.write(
      'qlora-studio rouge: note: --sentence-split uses a rule-based splitter, not nltk.sent_tokenize; rougeLsum can ' +
        'differ from rouge_score with split_summaries=True. For exact parity, put one sentence per line instead.\n',
    );
  }
  const scorer = new RougeScorer({ useStemmer: values.stemmer, splitSummaries: sentenceSplit });
  const perExample = pairs.map(({ prediction, references }) =>
    references.length === 1 ? scorer.score(references[0], prediction) : scorer.scoreMulti(references, prediction),
  );
  const mean = meanScores(perExample);
  const bootstrap = bootstrapAggregate(perExample, { seed, nSamples });

  if (values.json) {
    io.stdout.write(JSON.stringify({ per_example: perExample, mean, bootstrap }) + '\n');
  } else {
    io.stdout.write(
      formatTable(mean, bootstrap, {
        pairs: pairs.length,
        stemmer: values.stemmer,
        sentenceSplit,
        seed,
        nSamples,
      }),
    );
  }
  return 0;
}

function usageError(io: RougeIo, message: string): number {
  io.stderr.write(`qlora-studio rouge: ${message}\n\n${ROUGE_USAGE}`);
  return 2;
}

async function readInput(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read (${code ?? (error as Error).message})`);
  }
}

/** The pairs of a JSONL text; every bad line is reported (up to MAX_REPORTED_ERRORS) as "file:line: problem". */
export function parsePairs(file: string, text: string): Pair[] {
  const pairs: Pair[] = [];
  const errors: string[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const problem = parsePair(line, pairs);
    if (problem !== null) errors.push(`${file}:${index + 1}: ${problem}`);
  });
  if (errors.length > 0) {
    const shown = errors.slice(0, MAX_REPORTED_ERRORS);
    if (errors.length > shown.length) shown.push(`... and ${errors.length - shown.length} more bad lines`);
    throw new InputError(shown.join('\n'));
  }
  if (pairs.length === 0) throw new InputError(`${file}: no pairs (expected JSONL lines with "prediction" and "references")`);
  return pairs;
}

/** Appends the pair on `line` to `pairs`, or returns what is wrong with it. */
function parsePair(line: string, pairs: Pair[]): string | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return `not valid JSON (${(error as Error).message})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object';
  const record = value as Record<string, unknown>;
  if (!('prediction' in record)) return 'field "prediction" is missing';
  if (typeof record.prediction !== 'string') return `field "prediction" must be a string, not ${kind(record.prediction)}`;
  const hasList = 'references' in record;
  const hasOne = 'reference' in record;
  if (hasList && hasOne) return 'give either "references" or "reference", not both';
  if (hasOne) {
    if (typeof record.reference !== 'string') return `field "reference" must be a string, not ${kind(record.reference)}`;
    pairs.push({ prediction: record.prediction, references: [record.reference] });
    return null;
  }
  if (!hasList) return 'field "references" is missing (or give "reference")';
  const refs = record.references;
  if (!Array.isArray(refs)) return `field "references" must be an array of strings, not ${kind(refs)}`;
  if (refs.length === 0) return 'field "references" must not be empty';
  for (let i = 0; i < refs.length; i++) {
    if (typeof refs[i] !== 'string') return `field "references[${i}]" must be a string, not ${kind(refs[i])}`;
  }
  pairs.push({ prediction: record.prediction, references: refs as string[] });
  return null;
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

interface TableInfo {
  pairs: number;
  stemmer: boolean;
  sentenceSplit: boolean;
  seed: number;
  nSamples: number;
}

function formatTable(
  mean: Record<DefaultRougeType, Score>,
  bootstrap: Record<DefaultRougeType, AggregateScore>,
  info: TableInfo,
): string {
  const f = (x: number): string => x.toFixed(4);
  const rows: string[][] = [['type', 'precision', 'recall', 'fmeasure', 'F 95% interval']];
  for (const type of Object.keys(mean) as DefaultRougeType[]) {
    const m = mean[type];
    const b = bootstrap[type];
    rows.push([type, f(m.precision), f(m.recall), f(m.fmeasure), `${f(b.low.fmeasure)} - ${f(b.high.fmeasure)}`]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const body = rows
    .map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '))
    .join('\n');
  const on = (b: boolean): string => (b ? 'on' : 'off');
  return (
    `ROUGE over ${info.pairs} pair${info.pairs === 1 ? '' : 's'} (stemmer ${on(info.stemmer)}, ` +
    `sentence split ${on(info.sentenceSplit)}; mean of per-example scores)\n\n${body}\n\n` +
    `Interval: bootstrap of the mean F, ${info.nSamples} resamples, seed ${info.seed} ` +
    `(evaluate's use_aggregator=True reports the bootstrap median, unseeded).\n`
  );
}
