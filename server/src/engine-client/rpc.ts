/**
 * A typed JSON-RPC 2.0 connection over Content-Length framed streams. The server only sends requests and
 * receives notifications (the engine never calls the server), but an incoming request is answered with
 * MethodNotFound so a peer never waits forever.
 */
import type { Readable, Writable } from 'node:stream';
import { CancelRequest, ErrorCodes, type CancelRequestParams, type EngineErrorData } from '../../../protocol/engine';
import { FrameWriter, readFrames } from './framing';

/** An error response from the engine: its JSON-RPC code, message and where the problem is. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly code: number,
    message: string,
    readonly data: Partial<EngineErrorData> = {},
    /** The request that failed. */
    readonly method?: string,
  ) {
    super(message);
  }

  get file(): string | undefined {
    return this.data.file;
  }
  get line(): number | undefined {
    return this.data.line;
  }
  get field(): string | undefined {
    return this.data.field;
  }
  get remedy(): string | undefined {
    return this.data.remedy;
  }
}

/** The connection closed (peer exited, stream ended, or close() was called) before a response came. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
}

type NotificationHandler = (params: unknown) => void;
export interface Disposable {
  dispose(): void;
}

interface Pending {
  method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

export interface RpcConnectionOptions {
  /**
   * Close (and reject pending requests) when the input stream ends. The supervisor turns this off and closes
   * the connection itself once the process has exited, so the rejection can quote the process's last stderr.
   */
  closeOnEnd?: boolean;
  /** Protocol problems (malformed frames, unknown response ids); default: ignored. */
  onProtocolError?: (error: Error) => void;
}

export class RpcConnection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<NotificationHandler>>();
  private readonly anyHandlers = new Set<(method: string, params: unknown) => void>();
  private readonly closeListeners = new Set<(error: Error) => void>();
  private readonly writer: FrameWriter;
  private readonly stopReading: () => void;
  private closedWith: Error | null = null;

  constructor(input: Readable, output: Writable, private readonly options: RpcConnectionOptions = {}) {
    this.writer = new FrameWriter(output);
    this.stopReading = readFrames(input, {
      message: (body) => this.dispatch(body),
      error: (error) => this.options.onProtocolError?.(error),
      close: () => {
        if (this.options.closeOnEnd ?? true) this.close(new ConnectionClosedError('the engine closed the connection'));
      },
    });
    // A write to a dead process's stdin must not crash the host process.
    output.on('error', (error) => this.options.onProtocolError?.(error));
  }

  get isClosed(): boolean {
    return this.closedWith !== null;
  }

  /**
   * `signal` aborted while the request is pending sends `$/cancelRequest`; the promise still settles with the peer's
   * answer (RequestCancelled when it stopped, the result when it could not or had finished).
   */
  sendRequest<P, R>(method: string, params: P, signal?: AbortSignal): Promise<R> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    const cancel = (): void => {
      if (this.pending.has(id) && !this.closedWith) void this.sendNotification<CancelRequestParams>(CancelRequest, { id }).catch(() => {});
    };
    const settled = new Promise<R>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (result: unknown) => void, reject });
      this.writer.write({ jsonrpc: '2.0', id, method, params }).catch((error: Error) => {
        if (!this.pending.delete(id)) return;
        reject(this.closedWith ?? new ConnectionClosedError(`could not send ${method}: ${error.message}`));
      });
    });
    if (!signal) return settled;
    if (signal.aborted) cancel();
    else signal.addEventListener('abort', cancel, { once: true });
    return settled.finally(() => signal.removeEventListener('abort', cancel));
  }

  async sendNotification<P>(method: string, params: P): Promise<void> {
    if (this.closedWith) throw this.closedWith;
    await this.writer.write({ jsonrpc: '2.0', method, params });
  }

  onNotification<P>(method: string, handler: (params: P) => void): Disposable {
    let set = this.handlers.get(method);
    if (!set) this.handlers.set(method, (set = new Set()));
    const h = handler as NotificationHandler;
    set.add(h);
    return { dispose: () => set.delete(h) };
  }

  /** Every notification, whatever its method. */
  onAnyNotification(handler: (method: string, params: unknown) => void): Disposable {
    this.anyHandlers.add(handler);
    return { dispose: () => this.anyHandlers.delete(handler) };
  }

  onClose(listener: (error: Error) => void): Disposable {
    if (this.closedWith) {
      const error = this.closedWith;
      queueMicrotask(() => listener(error));
      return { dispose: () => {} };
    }
    this.closeListeners.add(listener);
    return { dispose: () => this.closeListeners.delete(listener) };
  }

  /** Stops reading, rejects every pending request with `error`, and tells close listeners. Idempotent. */
  close(error: Error = new ConnectionClosedError('the connection was closed')): void {
    if (this.closedWith) return;
    this.closedWith = error;
    this.stopReading();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
    for (const listener of this.closeListeners) listener(error);
    this.closeListeners.clear();
  }

  private dispatch(body: unknown): void {
    if (!isObject(body)) {
      this.options.onProtocolError?.(new Error(`not a JSON-RPC message: ${JSON.stringify(body)}`));
      return;
    }
    if ('method' in body && typeof body.method === 'string') {
      if ('id' in body && body.id !== undefined && body.id !== null) {
        // A request from the engine: nothing is served on this side.
        void this.writer
          .write({
            jsonrpc: '2.0',
            id: body.id,
            error: { code: ErrorCodes.MethodNotFound, message: `the server handles no requests (${body.method})` },
          })
          .catch(() => {});
        return;
      }
      for (const handler of this.handlers.get(body.method) ?? []) this.callSafely(() => handler(body.params));
      for (const handler of this.anyHandlers) this.callSafely(() => handler(body.method as string, body.params));
      return;
    }
    const id = typeof body.id === 'number' ? body.id : Number(body.id);
    const pending = this.pending.get(id);
    if (!pending) {
      this.options.onProtocolError?.(new Error(`response to an unknown request id ${JSON.stringify(body.id)}`));
      return;
    }
    this.pending.delete(id);
    if ('error' in body && isObject(body.error)) {
      const e = body.error;
      const code = typeof e.code === 'number' ? e.code : ErrorCodes.InternalError;
      const message = typeof e.message === 'string' ? e.message : 'unknown engine error';
      const data = isObject(e.data) ? (e.data as Partial<EngineErrorData>) : {};
      pending.reject(new EngineError(code, message, data, pending.method));
    } else {
      pending.resolve('result' in body ? body.result : null);
    }
  }

  private callSafely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.options.onProtocolError?.(error as Error);
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
