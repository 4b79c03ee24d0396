// Bundles every Node entry point into dist/. `node esbuild.mjs --watch` rebuilds on change.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** [entry, outfile, extra options]; entries that do not exist yet are skipped, so the table can lead the code. */
const targets = [
  ['server/src/cli.ts', 'dist/cli.js', { banner: { js: '#!/usr/bin/env node' } }],
  ['server/src/server.ts', 'dist/server.js', {}],
  ['extension/src/main.ts', 'dist/extension.js', { external: ['vscode'] }],
  ['webview/src/main.ts', 'dist/webview.js', { platform: 'browser', format: 'iife' }],
];

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  logLevel: 'info',
  // Optional native/ML packages stay out of the bundle and load from node_modules at run time.
  external: ['@huggingface/transformers', 'onnxruntime-node', 'sharp'],
};

const contexts = [];
for (const [entry, outfile, extra] of targets) {
  if (!existsSync(entry)) continue;
  const options = { ...common, ...extra, entryPoints: [entry], outfile, external: [...common.external, ...(extra.external ?? [])] };
  if (watch) contexts.push(await esbuild.context(options));
  else await esbuild.build(options);
}
if (watch) await Promise.all(contexts.map((c) => c.watch()));
