import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { ResolvedConfig } from '../../protocol/config';
import { ErrorCodes, TrainPlan, TrainStart, type EnvReport } from '../../protocol/engine';
import { PythonNotFoundError } from '../../server/src/engine-client/python';
import { EngineError } from '../../server/src/engine-client/rpc';
import { EngineCrashedError, EngineSupervisor, type EngineExit } from '../../server/src/engine-client/supervise';
import { fakeSupervisor, rejection, repo, tempDir, waitFor } from '../support/helpers';

const config = (model: string): ResolvedConfig => ({ model, train: { max_steps: 2 }, data: { train: '/data/train.jsonl' } }) as ResolvedConfig;
const pidOf = async (s: EngineSupervisor) => (await s.request(TrainPlan, { config: config('m') })).terms[0]!.bytes;

describe('EngineSupervisor (fake engine)', () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('starts lazily on the first request, after the initialize handshake', async () => {
    const s = fakeSupervisor();
    assert.equal(s.running, false);
    assert.equal(s.startCount, 0);
    assert.equal(s.envReport, null);
    const pid = await pidOf(s);
    assert.equal(s.running, true);
    assert.equal(s.startCount, 1);
    assert.equal(pid, s.pid);
    assert.equal((s.envReport as EnvReport | null)?.python.version, '3.12.0');
    assert.equal(await pidOf(s), pid, 'a second request reuses the process');
    await s.shutdown();
  });

  it('carries UTF-8 results intact', async () => {
    const s = fakeSupervisor();
    const plan = await s.request(TrainPlan, { config: config('m') });
    assert.deepEqual(plan.terms.map((t) => t.detail), ['this process — naïve ✓', 'ünïcödé 🚀']);
    await s.shutdown();
  });

  it('drains stderr line by line into the log file and to listeners', async () => {
    const logFile = path.join(dir, 'logs', 'engine.log');
    const s = fakeSupervisor({ logFile });
    const lines: string[] = [];
    s.onStderr((l) => lines.push(l));
    await s.start();
    await waitFor(() => lines.includes('fake engine: initialize from test'), 2000, 'stderr line');
    await s.shutdown();
    assert.deepEqual(lines, ['fake engine: started', 'fake engine: initialize from test']);
    const log = fs.readFileSync(logFile, 'utf8');
    assert.match(log, /fake engine: started\nfake engine: initialize from test\n/);
    assert.match(log, /engine exited/);
  });

  it('a crash mid-request rejects with the last 20 stderr lines, and the next request restarts the engine', async () => {
    const s = fakeSupervisor();
    const exits: EngineExit[] = [];
    s.onExit((e) => exits.push(e));
    const firstPid = await pidOf(s);
    const error = await rejection(s.request(TrainStart, { runDir: path.join(dir, 'r'), config: config('crash'), resume: false }));
    assert.ok(error instanceof EngineCrashedError);
    assert.equal(error.code, 3);
    assert.match(error.message, /exited unexpectedly \(exit code 3\) during train\/start/);
    assert.deepEqual(error.stderrTail, Array.from({ length: 20 }, (_, i) => `crash log line ${i + 6}`));
    assert.match(error.message, /crash log line 25/);
    assert.doesNotMatch(error.message, /crash log line 5\n/);
    assert.equal(s.running, false);
    assert.equal(exits.length, 1);
    assert.equal(exits[0]!.expected, false);

    const secondPid = await pidOf(s);
    assert.notEqual(secondPid, firstPid);
    assert.equal(s.startCount, 2);
    await s.shutdown();
    assert.equal(exits.at(-1)!.expected, true);
  });

  it('passes engine errors through as EngineError without restarting', async () => {
    const s = fakeSupervisor();
    const pid = await pidOf(s);
    const error = await rejection(s.request(TrainStart, { runDir: path.join(dir, 'b'), config: config('bad-dataset'), resume: false }));
    assert.ok(error instanceof EngineError);
    assert.equal(error.code, ErrorCodes.BadDataset);
    assert.deepEqual([error.file, error.line], ['/data/train.jsonl', 3]);
    assert.equal(await pidOf(s), pid);
    await s.shutdown();
  });

  it('an engine that dies before initialize rejects start() with its stderr', async () => {
    const s = fakeSupervisor({}, { FAKE_ENGINE_MODE: 'crash-on-start' });
    const error = await rejection(s.start());
    assert.ok(error instanceof EngineCrashedError);
    assert.match(error.message, /during initialize/);
    assert.match(error.message, /No module named 'torch'/);
  });

  it('shutdown kills an engine that does not exit within the timeout', async () => {
    const s = fakeSupervisor({ shutdownTimeoutMs: 300 }, { FAKE_ENGINE_MODE: 'ignore-shutdown' });
    const exits: EngineExit[] = [];
    s.onExit((e) => exits.push(e));
    await s.start();
    const started = Date.now();
    await s.shutdown();
    assert.ok(Date.now() - started >= 250, 'waited for the timeout');
    assert.equal(exits[0]!.signal, 'SIGKILL');
    assert.equal(s.running, false);
  });

  it('kill() rejects the pending request with a "shut down" error, not a crash', async () => {
    const s = fakeSupervisor();
    await s.start();
    const request = s.request(TrainStart, { runDir: path.join(dir, 'k'), config: config('crash'), resume: false });
    s.kill();
    await assert.rejects(request, (e: Error) => !(e instanceof EngineCrashedError) && /shut down/.test(e.message));
  });

  it('says how to set up Python when no interpreter can be found', async () => {
    const s = new EngineSupervisor({ clientName: 'test', repoRoot: dir, env: { PATH: '' } });
    const error = await rejection(s.start());
    assert.ok(error instanceof PythonNotFoundError);
    assert.match(error.message, /npm run setup:engine/);
    assert.match(error.message, /QLORA_STUDIO_PYTHON/);
  });

  it('reports an interpreter that cannot be executed as a start failure', async () => {
    const notExecutable = path.join(dir, 'python');
    fs.writeFileSync(notExecutable, 'not a program', { mode: 0o644 });
    const s = new EngineSupervisor({ clientName: 'test', repoRoot: repo, python: () => notExecutable });
    const error = await rejection(s.start());
    assert.ok(error instanceof EngineCrashedError);
    assert.match(error.message, /could not start: spawn .*EACCES/);
  });
});
