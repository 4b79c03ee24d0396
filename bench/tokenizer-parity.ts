/**
 * Id-for-id parity of the editor's tokenizer (server/src/tokenizer/) with Python transformers on a whole JSONL
 * file rendered through a template — too big for the test suite (12,460 DialogSum train records), run by hand:
 *
 *   node --import tsx bench/tokenizer-parity.ts <model dir> <template.yaml> <data.jsonl>
 *
 * Prints how many prompts and responses were compared, how many differ (the first few shown), and the time taken.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isRenderable, parseTemplate, renderRecord } from '../server/src/templates/template';
import { loadTokenizer } from '../server/src/tokenizer/load';
import { findPython, runPython } from '../test/lsp/python';

const [modelDir, templateFile, dataFile] = process.argv.slice(2).map((p) => path.resolve(p));
if (!modelDir || !templateFile || !dataFile) {
  console.error('usage: node --import tsx bench/tokenizer-parity.ts <model dir> <template.yaml> <data.jsonl>');
  process.exit(2);
}
const template = parseTemplate(fs.readFileSync(templateFile, 'utf8'), templateFile);
if (!isRenderable(template)) throw new Error(`${templateFile} does not render`);
const texts: string[] = [];
for (const line of fs.readFileSync(dataFile, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const record = JSON.parse(line) as Record<string, unknown>;
  record.summary ??= record.summary1;
  const r = renderRecord(template, record);
  texts.push(r.prompt, r.response);
}
const python = findPython(['transformers']);
if (!python) throw new Error('no Python with transformers');
const t0 = Date.now();
const expected = runPython(python, `
import json, sys
from transformers import AutoTokenizer
data = json.load(sys.stdin)
tok = AutoTokenizer.from_pretrained(data["model"])
print(json.dumps([tok(t, add_special_tokens=False)["input_ids"] for t in data["texts"]]))
`, { model: modelDir, texts }) as number[][];
const t1 = Date.now();
void loadTokenizer(modelDir, process.cwd()).then((loaded) => {
  if (!loaded.ok) throw new Error(loaded.reason);
  let differ = 0;
  let tokens = 0;
  texts.forEach((text, i) => {
    const ids = loaded.tokenizer.encode(text);
    tokens += ids.length;
    if (JSON.stringify(ids) !== JSON.stringify(expected[i])) {
      if (++differ <= 5) console.log(`differs: ${JSON.stringify(text.slice(0, 100))}`);
    }
  });
  console.log(`${loaded.tokenizer.engine} on ${path.basename(modelDir)}: ${texts.length / 2} records (${texts.length} texts, ${tokens} tokens), ${differ} differ from Python; ` +
    `Python ${((t1 - t0) / 1000).toFixed(1)} s, editor ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  process.exit(differ === 0 ? 0 : 1);
});
