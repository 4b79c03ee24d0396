import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { engineDir, findRootFrom, repoRoot } from '../../server/src/engine-client/paths';
import { findPython, pythonIn, PythonNotFoundError, venvPython } from '../../server/src/engine-client/python';
import { engineEnv } from '../../server/src/engine-client/spawn';
import { repo, tempDir } from '../support/helpers';

const root = tempDir('qlora-python-');
after(() => fs.rmSync(root, { recursive: true, force: true }));
const touch = (file: string): string => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '', { mode: 0o755 });
  return file;
};

describe('engine interpreter and environment', () => {
  const venv = touch(venvPython(root, 'linux'));
  const fromEnv = touch(path.join(root, 'env-python'));
  const explicit = touch(path.join(root, 'explicit-python'));
  const bin = touch(path.join(root, 'bin', 'python3.11'));

  it('prefers the explicit setting, then $QLORA_STUDIO_PYTHON, then <repo>/.venv', () => {
    const env = { QLORA_STUDIO_PYTHON: fromEnv };
    assert.deepEqual(findPython({ explicit, repoRoot: root, env }), { executable: explicit, source: 'option' });
    assert.deepEqual(findPython({ explicit: '  ', repoRoot: root, env }), { executable: fromEnv, source: 'env' });
    assert.deepEqual(findPython({ repoRoot: root, env: {} }), { executable: venv, source: 'venv' });
  });

  it('takes $QLORA_STUDIO_VENV (the extension\'s global storage) before <repo>/.venv, once it has a python', () => {
    const managed = path.join(root, 'global-storage', 'engine-env');
    assert.deepEqual(findPython({ repoRoot: root, env: { QLORA_STUDIO_VENV: managed } }), { executable: venv, source: 'venv' });
    const python = touch(pythonIn(managed, 'linux'));
    assert.deepEqual(findPython({ repoRoot: root, env: { QLORA_STUDIO_VENV: managed } }), { executable: python, source: 'venv' });
    assert.deepEqual(findPython({ repoRoot: root, env: { QLORA_STUDIO_VENV: managed, QLORA_STUDIO_PYTHON: fromEnv } }), { executable: fromEnv, source: 'env' });
    assert.deepEqual(findPython({ explicit, repoRoot: root, env: { QLORA_STUDIO_VENV: managed } }), { executable: explicit, source: 'option' });
    assert.throws(() => findPython({ repoRoot: path.join(root, 'nowhere'), env: { QLORA_STUDIO_VENV: path.join(root, 'none') } }), (e: Error) => e instanceof PythonNotFoundError && e.message.includes(path.join(root, 'none', 'bin', 'python')));
  });

  it('looks a bare command name up on PATH', () => {
    const found = findPython({ explicit: 'python3.11', repoRoot: root, env: { PATH: path.join(root, 'bin') } });
    assert.equal(found.executable, bin);
  });

  it('uses .venv\\Scripts\\python.exe on Windows', () => {
    assert.equal(venvPython('C:\\r', 'win32'), path.join('C:\\r', '.venv', 'Scripts', 'python.exe'));
    assert.equal(venvPython('/r', 'linux'), path.join('/r', '.venv', 'bin', 'python'));
  });

  it('says exactly how to fix a missing or wrong interpreter', () => {
    const empty = tempDir('qlora-novenv-');
    try {
      assert.throws(() => findPython({ repoRoot: empty, env: {} }), (e: Error) => {
        assert.ok(e instanceof PythonNotFoundError);
        assert.match(e.message, /npm install/);
        assert.match(e.message, /npm run setup:engine/);
        assert.match(e.message, /QLORA_STUDIO_PYTHON/);
        return true;
      });
      assert.throws(() => findPython({ repoRoot: empty, env: { QLORA_STUDIO_PYTHON: '/no/such/python' } }), /QLORA_STUDIO_PYTHON=\/no\/such\/python does not exist/);
      assert.throws(() => findPython({ explicit: '/no/python', repoRoot: empty, env: {} }), /\/no\/python \(explicit setting\) does not exist/);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('prepends <repo>/engine to PYTHONPATH and passes HF_* and the rest through', () => {
    const env = engineEnv({ repoRoot: '/r', env: { PYTHONPATH: '/other', HF_HUB_OFFLINE: '1', HF_HOME: '/hf', PATH: '/bin' } });
    assert.equal(env.PYTHONPATH, `${path.join('/r', 'engine')}${path.delimiter}/other`);
    assert.equal(env.HF_HUB_OFFLINE, '1');
    assert.equal(env.HF_HOME, '/hf');
    assert.equal(env.PATH, '/bin');
    assert.equal(env.PYTHONUNBUFFERED, '1');
    assert.equal(engineEnv({ repoRoot: '/r', env: {} }).PYTHONPATH, path.join('/r', 'engine'));
  });

  it('finds the package root from the source tree and from a bundle in dist/', () => {
    assert.equal(repoRoot(), repo);
    assert.equal(findRootFrom(path.join(repo, 'server', 'src', 'engine')), repo);
    assert.equal(findRootFrom(path.join(repo, 'dist')), repo);
    assert.equal(engineDir(repo), path.join(repo, 'engine'));
    assert.equal(findRootFrom(root), null);
  });
});
