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

/** Local imports of every module: `from './x'` / `from '../y'` in TypeScript, `from .x import` in the engine. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const resolveTs = (from: string, spec: string): string | null => {
    const base = path.resolve(path.dirname(path.join(repo, from)), spec);
    for (const candidate of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(candidate)) return path.relative(repo, candidate);
    return null;
  };
  for (const file of modules().filter((m) => m.endsWith('.ts'))) {
    const text = fs.readFileSync(path.join(repo, file), 'utf8');
    const specs = [...text.matchAll(/^(?:import|export)[^'"]*from '(\.[^']*)'/gm)].map((m) => m[1]!);
    graph.set(file, specs.map((s) => resolveTs(file, s)).filter((f): f is string => f !== null));
  }
  for (const file of modules().filter((m) => m.endsWith('.py'))) {
    const text = fs.readFileSync(path.join(repo, file), 'utf8');
    const names = [...text.matchAll(/^\s*from \.(\w+) import/gm), ...text.matchAll(/^\s*from \. import (\w+)/gm)].map((m) => m[1]!);
    graph.set(file, names.map((n) => `engine/qlora_engine/${n}.py`).filter((f) => fs.existsSync(path.join(repo, f))));
  }
  for (const dir of ['server/src', 'extension/src']) {
    // server/src's folders are listed as folders above; their files are modules too.
    const walk = (d: string): string[] =>
      fs.readdirSync(path.join(repo, d), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(`${d}/${e.name}`) : e.name.endsWith('.ts') ? [`${d}/${e.name}`] : []));
    for (const file of walk(dir)) {
      if (graph.has(file)) continue;
      const text = fs.readFileSync(path.join(repo, file), 'utf8');
      const specs = [...text.matchAll(/^(?:import|export)[^'"]*from '(\.[^']*)'/gm)].map((m) => m[1]!);
      graph.set(file, specs.map((s) => resolveTs(file, s)).filter((f): f is string => f !== null));
    }
  }
  return graph;
}

test('no import cycles, type-only imports included', () => {
  const graph = importGraph();
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  assert.ok(graph.size > 150, `the import graph was not read (${graph.size} modules)`);
  assert.deepEqual(cycles, []);
});

test('one file-naming style per language: kebab-case TypeScript, snake_case Python', () => {
  const all = (dir: string): string[] =>
    fs.readdirSync(path.join(repo, dir), { withFileTypes: true }).flatMap((e) => {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) return ['__pycache__', 'node_modules', 'fixtures'].includes(e.name) ? [] : all(rel);
      return [rel];
    });
  const files = ['protocol', 'server/src', 'extension/src', 'webview/src', 'test', 'bench', 'scripts', 'engine'].flatMap(all);
  // a name, then optional suffixes that say what the file is (report.html.ts, eval.test.ts, css.d.ts)
  const ts = files.filter((f) => f.endsWith('.ts') && !/^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+)*\.ts$/.test(path.basename(f)));
  const py = files.filter((f) => f.endsWith('.py') && !/^(__[a-z]+__|[a-z0-9]+(_[a-z0-9]+)*)\.py$/.test(path.basename(f)));
  assert.deepEqual([...ts, ...py], [], 'file names out of style');
});
