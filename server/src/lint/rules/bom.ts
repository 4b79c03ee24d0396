import type { FileRule } from '../rule';
import { span } from '../types';

/** jsonl/bom: a UTF-8 byte order mark; Python's json.loads rejects the first line with it. */
export const bom: FileRule = {
  id: 'bom',
  scope: 'file',
  codes: ['jsonl/bom'],
  check(input, _ctx, report) {
    if (!input.bom) return;
    report({ range: span(0, 0, 0), severity: 'warning', code: 'jsonl/bom', message: 'the file starts with a UTF-8 byte order mark (BOM): Python reads it as part of the first record; save as UTF-8 without BOM' });
  },
};
