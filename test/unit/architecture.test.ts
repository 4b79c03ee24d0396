/** docs/architecture.md's module map is true to the tree: every path it names exists, and no module is left out. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { repo } from '../support/helpers';

const doc = fs.readFileSync(path.join(repo, 'docs', 'architecture.md'), 'utf8');
const section = /^## Module map\n([\s\S]*?)^## /m.exec(doc)?.[1] ?? '';
const named = new Set([...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!));

/** Every module the map must name: files of these folders (recursively), and the top level of server/src. */
function modules(): string[] {
  const files = (dir: string): string[] =>
    fs.readdirSync(path.join(repo, dir), { withFileTypes: true }).flatMap((e) => {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) return e.name === '__pycache__' ? [] : files(rel);
      return /\.(ts|py|css)$/.test(e.name) ? [rel] : [];
    });
  const server = fs.readdirSync(path.join(repo, 'server/src'), { withFileTypes: true }).map((e) => `server/src/${e.name}${e.isDirectory() ? '/' : ''}`);
  return [...files('protocol'), ...server, ...files('extension/src'), ...files('webview/src'), ...files('engine/qlora_engine')];
}

test('the module map names only paths that exist', () => {
  assert.ok(named.size > 40, `the map was not found in docs/architecture.md (${named.size} rows)`);
  const missing = [...named].filter((p) => !fs.existsSync(path.join(repo, p)));
  assert.deepEqual(missing, [], 'named in docs/architecture.md but not in the tree');
});

test('the module map leaves no module out', () => {
  const omitted = modules().filter((m) => !named.has(m));
  assert.deepEqual(omitted, [], 'in the tree but not in docs/architecture.md');
});
