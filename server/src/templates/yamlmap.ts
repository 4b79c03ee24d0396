/**
 * Offsets inside a YAML scalar's value -> offsets in the YAML document, so a Jinja error inside `prompt: |`
 * lands on the right line and column. Exact for literal blocks (`|`, `|-`, `|+`, with or without an indentation
 * indicator), plain scalars and quoted scalars (escapes, `''`, and line folding mapped to the line break);
 * folded blocks (`>`) map line by line. Anything else maps to the scalar's start.
 */
import { Scalar } from 'yaml';

export function scalarOffsetMap(docText: string, node: Scalar): (offset: number) => number {
  const [start, valueEnd] = node.range ?? [0, 0, 0];
  const value = String(node.value ?? '');
  const raw = docText.slice(start, valueEnd);
  const lineStart = docText.lastIndexOf('\n', start - 1) + 1;
  const keyIndent = /^ */.exec(docText.slice(lineStart, start))![0].length;
  const table = buildTable(raw, value, node.type, keyIndent);
  return (offset: number) => {
    if (!table) return start;
    const clamped = Math.max(0, Math.min(offset, table.length - 1));
    return start + table[clamped]!;
  };
}

/** table[i] = offset in raw of value char i (table[value.length] = end), or null when unknown. */
function buildTable(raw: string, value: string, type: Scalar['type'], keyIndent: number): number[] | null {
  switch (type) {
    case Scalar.BLOCK_LITERAL:
    case Scalar.BLOCK_FOLDED:
      return blockTable(raw, value, keyIndent);
    case Scalar.PLAIN:
      return raw.startsWith(value) ? [...Array(value.length + 1).keys()] : null;
    case Scalar.QUOTE_DOUBLE:
      return quotedTable(raw, value, '"');
    case Scalar.QUOTE_SINGLE:
      return quotedTable(raw, value, "'");
    default:
      return null;
  }
}

/** keyIndent: indentation of the line holding the key (an explicit indentation indicator counts from it). */
function blockTable(raw: string, value: string, keyIndent: number): number[] {
  const headerEnd = raw.indexOf('\n');
  if (headerEnd < 0) return [0];
  const header = raw.slice(0, headerEnd);
  const explicit = /[1-9]/.exec(header);
  const lines: { at: number; text: string }[] = [];
  let at = headerEnd + 1;
  for (const text of raw.slice(headerEnd + 1).split('\n')) {
    lines.push({ at, text });
    at += text.length + 1;
  }
  let indent = 0;
  if (explicit) indent = keyIndent + Number(explicit[0]);
  else indent = /^ */.exec(lines.find((l) => l.text.trim() !== '')?.text ?? '')?.[0].length ?? 0;
  const table: number[] = [];
  for (const line of lines) {
    const content = line.text.length > indent ? line.text.slice(indent) : '';
    for (let i = 0; i < content.length; i++) table.push(line.at + indent + i);
    table.push(line.at + indent + content.length); // the line break
  }
  while (table.length < value.length + 1) table.push(raw.length);
  return table.slice(0, value.length + 1);
}

function quotedTable(raw: string, value: string, quote: string): number[] | null {
  const table: number[] = [];
  let i = 1;
  while (i < raw.length && table.length < value.length) {
    const c = raw[i]!;
    if (c === quote) {
      if (quote === "'" && raw[i + 1] === "'") {
        table.push(i);
        i += 2;
        continue;
      }
      break;
    }
    if (quote === '"' && c === '\\') {
      const e = raw[i + 1];
      const width = e === 'x' ? 4 : e === 'u' ? 6 : e === 'U' ? 10 : 2;
      if (e === '\n') {
        i += 2;
        while (raw[i] === ' ' || raw[i] === '\t') i++;
        continue;
      }
      table.push(i);
      if (e === 'U' || (e === 'u' && value.codePointAt(table.length - 1)! > 0xffff)) table.push(i);
      i += width;
      continue;
    }
    if (c === '\n') {
      // Folding: a line break becomes a space, or is dropped for each blank line that follows.
      table.push(i);
      i++;
      while (raw[i] === ' ' || raw[i] === '\t') i++;
      while (raw[i] === '\n') {
        if (table.length < value.length) table.push(i);
        i++;
        while (raw[i] === ' ' || raw[i] === '\t') i++;
      }
      table.pop();
      table.push(i - 1);
      continue;
    }
    table.push(i);
    i++;
  }
  if (table.length !== value.length) return null;
  table.push(i);
  return table;
}
