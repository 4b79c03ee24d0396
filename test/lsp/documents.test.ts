/** LineDocument applies LSP incremental edits exactly like the text they describe (checked against plain strings). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineDocument, splitText } from '../../server/src/lint/documents';

function offsetAt(text: string, line: number, character: number): number {
  let offset = 0;
  for (let l = 0; l < line; l++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return text.length;
    offset = nl + 1;
  }
  const nl = text.indexOf('\n', offset);
  let end = nl < 0 ? text.length : nl;
  if (end > offset && text[end - 1] === '\r') end--;
  return Math.min(offset + character, end);
}

test('random incremental edits, CRLF and LF, at line ends and the end of the file', () => {
  let seed = 11;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pieces = ['', 'x', 'hello', '\n', '\r\n', 'a\nb', 'tail\n', '{"k": 1}\r\n', '\n\n'];
  let text = '{"a": 1}\n{"b": 2}\r\n\n{"c": 3}\n';
  const doc = new LineDocument('file:///t.jsonl', 1, text);
  for (let round = 0; round < 500; round++) {
    const lines = splitText(text).lines;
    const pos = (): { line: number; character: number } => {
      const line = random(lines.length + 1);
      return { line, character: random((lines[line]?.length ?? 0) + 2) };
    };
    let start = pos();
    let end = pos();
    if (start.line > end.line || (start.line === end.line && start.character > end.character)) [start, end] = [end, start];
    const insert = pieces[random(pieces.length)]!;
    const s = offsetAt(text, start.line, start.character);
    const e = Math.max(s, offsetAt(text, end.line, end.character));
    text = text.slice(0, s) + insert + text.slice(e);
    doc.update([{ range: { start, end }, text: insert }], round + 2);
    assert.equal(doc.getText(), text, `round ${round}`);
    assert.deepEqual(doc.lines, splitText(text).lines);
  }
});

test('unchanged lines keep their identity (the lint cache relies on it)', () => {
  const doc = new LineDocument('file:///t.jsonl', 1, 'one\ntwo\nthree\n');
  const before = doc.lines;
  doc.update([{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 3 } }, text: 'TWO' }], 2);
  assert.equal(doc.lines[0], before[0]);
  assert.equal(doc.lines[2], before[2]);
  assert.notEqual(doc.lines, before, 'arrays are replaced, not mutated');
  assert.deepEqual(before, ['one', 'two', 'three', '']);
});
