import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { CancelRequest, ErrorCodes } from '../../protocol/engine';
import { encodeFrame, readFrames } from '../../server/src/engine-client/framing';
import { ConnectionClosedError, EngineError, RpcConnection } from '../../server/src/engine-client/rpc';
import { rejection } from '../support/helpers';

/** A connection whose peer is driven by the test: `peerSend` writes frames to it, `sent` holds what it sent. */
function pair(options?: ConstructorParameters<typeof RpcConnection>[2]) {
  const toClient = new PassThrough();
  const toPeer = new PassThrough();
  const connection = new RpcConnection(toClient, toPeer, options);
  const sent: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  readFrames(toPeer, {
    message: (m) => {
      sent.push(m as Record<string, unknown>);
      waiters.splice(0).forEach((w) => w());
    },
    error: assert.fail,
    close: () => {},
  });
  const nextSent = async (count: number) => {
    while (sent.length < count) await new Promise<void>((r) => waiters.push(r));
    return sent[count - 1]!;
  };
  const peerSend = (message: object) => toClient.write(encodeFrame({ jsonrpc: '2.0', ...message }));
  return { connection, sent, nextSent, peerSend, toClient, toPeer };
}

describe('rpc', () => {
  it('sends a request and resolves with the matching response', async () => {
    const { connection, nextSent, peerSend } = pair();
    const a = connection.sendRequest<{ x: number }, string>('echo', { x: 1 });
    const b = connection.sendRequest<{ x: number }, string>('echo', { x: 2 });
    const first = await nextSent(1);
    const second = await nextSent(2);
    assert.deepEqual(first, { jsonrpc: '2.0', id: 1, method: 'echo', params: { x: 1 } });
    assert.equal(second.id, 2);
    peerSend({ id: 2, result: 'two — ✓' }); // answered out of order
    peerSend({ id: 1, result: 'one' });
    assert.equal(await a, 'one');
    assert.equal(await b, 'two — ✓');
  });

  it('an aborted signal sends $/cancelRequest for its pending request, once; the peer\'s answer settles it', async () => {
    const { connection, sent, nextSent, peerSend } = pair();
    const abort = new AbortController();
    const request = connection.sendRequest('generate', {}, abort.signal);
    const { id } = await nextSent(1);
    abort.abort();
    assert.deepEqual(await nextSent(2), { jsonrpc: '2.0', method: CancelRequest, params: { id } });
    peerSend({ id, error: { code: ErrorCodes.RequestCancelled, message: 'cancelled while downloading' } });
    const error = await rejection(request);
    assert.ok(error instanceof EngineError && error.code === ErrorCodes.RequestCancelled);

    // Answered before the abort: nothing is sent. Aborted before it was sent: the cancel follows the request.
    const late = new AbortController();
    const answered = connection.sendRequest('generate', {}, late.signal);
    const second = await nextSent(3);
    peerSend({ id: second.id, result: 'done' });
    assert.equal(await answered, 'done');
    late.abort();
    const early = AbortSignal.abort();
    const already = connection.sendRequest('model/pull', {}, early);
    assert.deepEqual([(await nextSent(4)).method, (await nextSent(5)).method], ['model/pull', CancelRequest]);
    peerSend({ id: sent[3]!.id, result: 'cached' });
    assert.equal(await already, 'cached');
    assert.equal(sent.length, 5);
  });

  it('rejects an error response as an EngineError with code, message and data', async () => {
    const { connection, nextSent, peerSend } = pair();
    const request = connection.sendRequest('train/start', {});
    const { id } = await nextSent(1);
    const data = { code: ErrorCodes.BadDataset, message: 'bad line', file: '/d/train.jsonl', line: 7, field: 'summary' };
    peerSend({ id, error: { code: ErrorCodes.BadDataset, message: 'bad line', data } });
    const error = await rejection(request);
    assert.ok(error instanceof EngineError);
    assert.equal(error.code, ErrorCodes.BadDataset);
    assert.equal(error.message, 'bad line');
    assert.equal(error.method, 'train/start');
    assert.deepEqual([error.file, error.line, error.field], ['/d/train.jsonl', 7, 'summary']);
  });

  it('delivers notifications to handlers by method, and to catch-all handlers', async () => {
    const { connection, peerSend } = pair();
    const stages: unknown[] = [];
    const all: string[] = [];
    const sub = connection.onNotification<{ stage: string }>('train/didStage', (p) => stages.push(p.stage));
    connection.onAnyNotification((method) => all.push(method));
    peerSend({ method: 'train/didStage', params: { stage: 'loading-model' } });
    peerSend({ method: 'train/didProgress', params: { step: 1 } });
    await new Promise((r) => setTimeout(r, 20));
    sub.dispose();
    peerSend({ method: 'train/didStage', params: { stage: 'training' } });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(stages, ['loading-model']);
    assert.deepEqual(all, ['train/didStage', 'train/didProgress', 'train/didStage']);
  });

  it('sends notifications without an id', async () => {
    const { connection, nextSent } = pair();
    await connection.sendNotification('exit', null);
    assert.deepEqual(await nextSent(1), { jsonrpc: '2.0', method: 'exit', params: null });
  });

  it('answers a request from the peer with MethodNotFound', async () => {
    const { peerSend, nextSent } = pair();
    peerSend({ id: 'abc', method: 'server/ask', params: {} });
    const reply = await nextSent(1);
    assert.equal(reply.id, 'abc');
    assert.equal((reply.error as { code: number }).code, ErrorCodes.MethodNotFound);
  });

  it('rejects pending requests when the peer closes the stream, and later requests at once', async () => {
    const { connection, nextSent, toClient } = pair();
    const closes: Error[] = [];
    connection.onClose((e) => closes.push(e));
    const pending = connection.sendRequest('train/plan', {});
    await nextSent(1);
    toClient.end();
    await assert.rejects(pending, ConnectionClosedError);
    assert.equal(closes.length, 1);
    assert.ok(connection.isClosed);
    await assert.rejects(connection.sendRequest('x', null), ConnectionClosedError);
  });

  it('close(error) rejects every pending request with that error', async () => {
    const { connection, nextSent } = pair({ closeOnEnd: false });
    const a = connection.sendRequest('a', null);
    const b = connection.sendRequest('b', null);
    await nextSent(2);
    const reason = new Error('engine crashed: last lines ...');
    connection.close(reason);
    await assert.rejects(a, (e) => e === reason);
    await assert.rejects(b, (e) => e === reason);
  });

  it('reports a response to an unknown id as a protocol error, not a crash', async () => {
    const errors: Error[] = [];
    const { peerSend } = pair({ onProtocolError: (e) => errors.push(e) });
    peerSend({ id: 99, result: null });
    await new Promise((r) => setTimeout(r, 20));
    assert.match(errors[0]!.message, /unknown request id 99/);
  });
});
