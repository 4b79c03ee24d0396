import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { encodeFrame, FrameDecoder, FrameWriter, FramingError, readFrames } from '../../server/src/engine-client/framing';

const messages = [
  { jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientName: 'test' } },
  { jsonrpc: '2.0', method: 'train/didStage', params: { message: 'naïve café — 日本語 🚀' } },
  { jsonrpc: '2.0', id: 2, result: { text: '€'.repeat(100) } },
];

function stream(): Buffer {
  return Buffer.concat(messages.map(encodeFrame));
}

describe('framing', () => {
  it('encodes Content-Length in bytes, not characters', () => {
    const frame = encodeFrame({ s: 'é🚀' });
    const header = frame.toString('ascii', 0, frame.indexOf('\r\n\r\n'));
    assert.equal(header, `Content-Length: ${Buffer.byteLength('{"s":"é🚀"}')}`);
    assert.notEqual(Buffer.byteLength('{"s":"é🚀"}'), '{"s":"é🚀"}'.length);
  });

  it('decodes coalesced frames from one chunk', () => {
    const bodies = new FrameDecoder().push(stream());
    assert.deepEqual(bodies.map((b) => JSON.parse(b)), messages);
  });

  it('decodes frames split at every byte, including inside headers and multi-byte characters', () => {
    const decoder = new FrameDecoder();
    const bodies: string[] = [];
    for (const byte of stream()) bodies.push(...decoder.push(Buffer.from([byte])));
    assert.deepEqual(bodies.map((b) => JSON.parse(b)), messages);
    assert.equal(decoder.pendingBytes, 0);
  });

  it('decodes frames split at arbitrary boundaries', () => {
    const all = stream();
    for (const size of [2, 3, 7, 13, 64]) {
      const decoder = new FrameDecoder();
      const bodies: string[] = [];
      for (let i = 0; i < all.length; i += size) bodies.push(...decoder.push(all.subarray(i, i + size)));
      assert.deepEqual(bodies.map((b) => JSON.parse(b)), messages, `chunk size ${size}`);
    }
  });

  it('accepts other headers and any header case', () => {
    const body = '{"a":1}';
    const text = `content-type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    assert.deepEqual(new FrameDecoder().push(text), [body]);
  });

  it('rejects a header without Content-Length, and unframed output', () => {
    assert.throws(() => new FrameDecoder().push('Content-Type: x\r\n\r\n{}'), FramingError);
    assert.throws(() => new FrameDecoder().push('Content-Length: abc\r\n\r\n{}'), FramingError);
    assert.throws(() => new FrameDecoder().push('x'.repeat(9000)), FramingError);
  });

  it('reads frames from a stream and reports a truncated frame at the end', async () => {
    const input = new PassThrough();
    const received: unknown[] = [];
    const errors: Error[] = [];
    const closed = new Promise<void>((resolve) =>
      readFrames(input, { message: (m) => received.push(m), error: (e) => errors.push(e), close: resolve }),
    );
    const all = stream();
    input.write(all.subarray(0, 10));
    input.write(all.subarray(10, all.length - 1));
    input.write(all.subarray(all.length - 1));
    input.write(encodeFrame({ partial: true }).subarray(0, 25));
    input.end();
    await closed;
    assert.deepEqual(received, messages);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /ended inside a frame/);
  });

  it('reports a body that is not JSON and keeps reading', async () => {
    const input = new PassThrough();
    const received: unknown[] = [];
    const errors: Error[] = [];
    const closed = new Promise<void>((resolve) =>
      readFrames(input, { message: (m) => received.push(m), error: (e) => errors.push(e), close: resolve }),
    );
    input.write('Content-Length: 5\r\n\r\nhello');
    input.end(encodeFrame({ ok: true }));
    await closed;
    assert.deepEqual(received, [{ ok: true }]);
    assert.match(errors[0]!.message, /not JSON/);
  });

  it('writes frames a reader can read back, and fails on a closed stream', async () => {
    const pipe = new PassThrough();
    const writer = new FrameWriter(pipe);
    const received: unknown[] = [];
    readFrames(pipe, { message: (m) => received.push(m), error: assert.fail, close: () => {} });
    for (const m of messages) await writer.write(m);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(received, messages);
    pipe.end();
    await assert.rejects(writer.write({}), /closed/);
  });
});
