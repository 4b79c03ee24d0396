/**
 * LSP-style Content-Length framing over byte streams (the engine's stdio).
 *
 *   Content-Length: 42\r\n
 *   \r\n
 *   {"jsonrpc":"2.0", ...}      <- exactly 42 bytes of UTF-8
 *
 * The reader works on bytes, never on decoded text, so a chunk boundary inside a header, inside the body or
 * inside a multi-byte UTF-8 character is harmless, and several frames in one chunk are all delivered.
 */
import type { Readable, Writable } from 'node:stream';

const HeaderEnd = Buffer.from('\r\n\r\n', 'ascii');
/** A header block longer than this without "\r\n\r\n" means the stream is not framed (e.g. stray prints). */
const MaxHeaderBytes = 8 * 1024;

export class FramingError extends Error {
  override readonly name = 'FramingError';
}

/** Encodes one message as a frame: header + UTF-8 JSON body. */
export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const header = Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii');
  return Buffer.concat([header, body]);
}

/**
 * Incremental decoder: feed it chunks, get back the complete frames' bodies (as decoded text).
 * Throws FramingError on a malformed header; the decoder is unusable afterwards.
 */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  /** Body length of the frame being read, once its header is parsed. */
  private bodyLength: number | null = null;

  push(chunk: Buffer | string): string[] {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes]);
    const bodies: string[] = [];
    for (;;) {
      if (this.bodyLength === null) {
        const end = this.buffer.indexOf(HeaderEnd);
        if (end < 0) {
          if (this.buffer.length > MaxHeaderBytes) {
            throw new FramingError(`no frame header in the first ${MaxHeaderBytes} bytes: ${preview(this.buffer)}`);
          }
          break;
        }
        this.bodyLength = parseHeader(this.buffer.subarray(0, end).toString('ascii'));
        this.buffer = this.buffer.subarray(end + HeaderEnd.length);
      }
      if (this.buffer.length < this.bodyLength) break;
      bodies.push(this.buffer.subarray(0, this.bodyLength).toString('utf8'));
      this.buffer = this.buffer.subarray(this.bodyLength);
      this.bodyLength = null;
    }
    return bodies;
  }

  /** Bytes received but not yet part of a complete frame (non-zero at end of stream = truncated frame). */
  get pendingBytes(): number {
    return this.buffer.length;
  }
}

function parseHeader(block: string): number {
  let length: number | null = null;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new FramingError(`malformed header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (!/^\d+$/.test(value)) throw new FramingError(`invalid Content-Length: ${JSON.stringify(value)}`);
      length = Number(value);
    }
    // Other headers (Content-Type) are allowed and ignored, as in LSP.
  }
  if (length === null) throw new FramingError(`frame header without Content-Length: ${JSON.stringify(block)}`);
  return length;
}

function preview(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, 120).toString('utf8'));
}

export interface FrameReaderHandlers {
  message(body: unknown): void;
  /** Malformed framing or JSON; reading stops after a framing error. */
  error(error: Error): void;
  /** The stream ended (or was destroyed). */
  close(): void;
}

/** Reads frames from a stream and delivers each parsed JSON body. Returns a function that stops reading. */
export function readFrames(stream: Readable, handlers: FrameReaderHandlers): () => void {
  const decoder = new FrameDecoder();
  let stopped = false;
  const onData = (chunk: Buffer | string): void => {
    if (stopped) return;
    let bodies: string[];
    try {
      bodies = decoder.push(chunk);
    } catch (error) {
      stop();
      handlers.error(error as Error);
      return;
    }
    for (const body of bodies) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch (error) {
        handlers.error(new FramingError(`frame body is not JSON (${(error as Error).message}): ${body.slice(0, 200)}`));
        continue;
      }
      handlers.message(parsed);
    }
  };
  let closed = false;
  const onClose = (): void => {
    if (closed) return;
    closed = true;
    if (!stopped && decoder.pendingBytes > 0) {
      handlers.error(new FramingError(`stream ended inside a frame (${decoder.pendingBytes} bytes pending)`));
    }
    stop();
    handlers.close();
  };
  const stop = (): void => {
    stopped = true;
    stream.off('data', onData);
  };
  stream.on('data', onData);
  stream.once('end', onClose);
  stream.once('close', onClose);
  return stop;
}

/** Writes frames to a stream; rejects when the stream is gone. */
export class FrameWriter {
  constructor(private readonly stream: Writable) {}

  write(message: unknown): Promise<void> {
    const frame = encodeFrame(message);
    return new Promise((resolve, reject) => {
      if (this.stream.destroyed || this.stream.writableEnded) {
        reject(new Error('the stream is closed'));
        return;
      }
      this.stream.write(frame, (error) => (error ? reject(error) : resolve()));
    });
  }
}
