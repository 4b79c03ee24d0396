import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { defaultRunsDir, listRuns, newestCheckpoint, newRunId, readRun, resumeTarget } from '../../server/src/runs/registry';
import { tempDir } from '../support/helpers';

let runs: string;
beforeEach(() => (runs = tempDir('qlora-runs-')));
afterEach(() => fs.rmSync(runs, { recursive: true, force: true }));

function makeRun(id: string, record: object | string | null, checkpoints: string[] = [], config = true): string {
  const dir = path.join(runs, id);
  fs.mkdirSync(dir, { recursive: true });
  if (record !== null) fs.writeFileSync(path.join(dir, 'run.json'), typeof record === 'string' ? record : JSON.stringify(record));
  if (config) fs.writeFileSync(path.join(dir, 'config.yaml'), 'model: x\n');
  for (const c of checkpoints) fs.mkdirSync(path.join(dir, 'checkpoints', c), { recursive: true });
  return dir;
}

describe('runs registry', () => {
  it('names a run YYYYMMDD-HHMMSS-<config basename>, unique within the runs folder', () => {
    const now = new Date(2025, 0, 2, 3, 4, 5);
    const id = newRunId('/x/configs/finetune.yaml', runs, now);
    assert.equal(id, '20250102-030405-finetune');
    fs.mkdirSync(path.join(runs, id));
    assert.equal(newRunId('/x/configs/finetune.yaml', runs, now), '20250102-030405-finetune-2');
    fs.mkdirSync(path.join(runs, `${id}-2`));
    assert.equal(newRunId('/x/configs/finetune.yaml', runs, now), '20250102-030405-finetune-3');
    assert.equal(newRunId('my config (v2).YML', runs, now), '20250102-030405-my-config-v2');
    assert.match(newRunId('tiny.yaml', runs), /^\d{8}-\d{6}-tiny$/);
  });

  it('defaults the runs folder to ./runs of the cwd', () => {
    assert.equal(defaultRunsDir('/work/project'), path.resolve('/work/project', 'runs'));
  });

  it('lists runs from their run.json, newest first, and keeps broken ones visible', () => {
    makeRun('20250101-000000-a', { runId: '20250101-000000-a', status: 'completed', step: 60, totalSteps: 60, startedAt: '2025-01-01T00:00:00Z', endedAt: '2025-01-01T00:05:00Z', data: null, adapterPath: '/r/a/adapter', error: null });
    makeRun('20250103-000000-c', { runId: '20250103-000000-c', status: 'running', step: 3, totalSteps: 10, startedAt: '2025-01-03T00:00:00Z' });
    makeRun('20250102-000000-b', '{ not json');
    makeRun('not-a-run', null, [], false);
    fs.writeFileSync(path.join(runs, 'stray.txt'), '');
    const list = listRuns(runs);
    assert.deepEqual(
      list.map((r) => [r.id, r.record?.status ?? null]),
      [
        ['20250103-000000-c', 'running'],
        ['20250101-000000-a', 'completed'],
        ['20250102-000000-b', null],
      ],
    );
    assert.match(list[2]!.problem!, /unreadable run.json/);
    assert.equal(list[1]!.record!.adapterPath, '/r/a/adapter');
    assert.equal(list[0]!.record!.endedAt, null);
    assert.deepEqual(listRuns(path.join(runs, 'missing')), []);
  });

  it('reads a run folder without run.json as a problem, not a crash', () => {
    const dir = makeRun('x', null);
    assert.deepEqual(readRun(dir), { id: 'x', dir, record: null, problem: 'no run.json' });
  });

  it('finds the newest checkpoint by step number, ignoring temp folders and files', () => {
    const dir = makeRun('r', null, ['step-5', 'step-20', 'step-100.tmp', '.tmp-step-200', 'step-150-partial', 'tmp-step-300']);
    fs.writeFileSync(path.join(dir, 'checkpoints', 'step-400'), 'a file, not a checkpoint');
    const newest = newestCheckpoint(dir);
    assert.deepEqual(newest, { step: 20, path: path.join(dir, 'checkpoints', 'step-20') });
    assert.equal(newestCheckpoint(makeRun('empty', null)), null);
  });

  it('resolves a resume target: folder, saved config.yaml and checkpoint', () => {
    const dir = makeRun('20250101-000000-a', { runId: 'the-id', status: 'cancelled', step: 7, totalSteps: 10 }, ['step-5']);
    const target = resumeTarget(path.relative(process.cwd(), dir));
    assert.ok(target.ok);
    assert.equal(target.runDir, dir);
    assert.equal(target.runId, 'the-id');
    assert.equal(target.configFile, path.join(dir, 'config.yaml'));
    assert.equal(target.checkpoint.step, 5);

    const missing = resumeTarget(path.join(runs, 'nope'));
    assert.ok(!missing.ok);
    assert.match(missing.message, /run folder not found/);
    const noConfig = resumeTarget(makeRun('b', null, ['step-1'], false));
    assert.ok(!noConfig.ok);
    assert.match(noConfig.message, /no config.yaml/);
    const noCheckpoint = resumeTarget(makeRun('c', null, ['step-3.tmp']));
    assert.ok(!noCheckpoint.ok);
    assert.match(noCheckpoint.message, /no checkpoint to resume from/);
  });
});
