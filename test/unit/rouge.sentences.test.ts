import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitSentences } from '../../server/src/eval/sentences';

test('splits after . ? ! followed by whitespace, keeping closing quotes and brackets', () => {
  assert.deepEqual(splitSentences('It rained. We stayed in! Did you? Yes.'), ['It rained.', 'We stayed in!', 'Did you?', 'Yes.']);
  assert.deepEqual(splitSentences('He said "stop." Then he left.'), ['He said "stop."', 'Then he left.']);
  assert.deepEqual(splitSentences('(It works.) Good.'), ['(It works.)', 'Good.']);
  assert.deepEqual(splitSentences('  leading and trailing.   '), ['leading and trailing.']);
  assert.deepEqual(splitSentences(''), []);
});

test('does not split after abbreviations, initialisms, initials, or a number before a lower-case word', () => {
  assert.deepEqual(splitSentences('Mr. Smith and Mrs. Brown met Dr. Lee. They talked.'), [
    'Mr. Smith and Mrs. Brown met Dr. Lee.',
    'They talked.',
  ]);
  assert.deepEqual(splitSentences('The U.S. team won at 5 p.m. on Friday.'), ['The U.S. team won at 5 p.m. on Friday.']);
  assert.deepEqual(splitSentences('J. K. Rowling wrote it. It sold.'), ['J. K. Rowling wrote it.', 'It sold.']);
  assert.deepEqual(splitSentences('Chapter 5. it begins.'), ['Chapter 5. it begins.']);
});

test('an ellipsis ends a sentence only before an upper-case word; a newline alone never does', () => {
  assert.deepEqual(splitSentences('Well... maybe. Wait... No.'), ['Well... maybe.', 'Wait...', 'No.']);
  assert.deepEqual(splitSentences('one line\nanother line'), ['one line\nanother line']);
  assert.deepEqual(splitSentences('first.\nsecond.'), ['first.', 'second.']);
});
