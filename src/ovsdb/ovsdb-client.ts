import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { logger } from '../log.js';
import { JsonStreamSplitter } from './json-stream-splitter.js';
import type { OvsdbOp, OvsdbOpResult, TableUpdates } from './ovsdb-values.js';

/** The server refused a request or an operation of a transaction (RFC 7047 error objects). */
export class OvsdbError extends Error {
  /** The RFC's error string: `constraint violation`, `timed out`, `referential integrity violation`... */
  readonly error: string;
  readonly details?: string;
  /** Index of the failing operation in the transaction; absent for a failed commit or a non-transact request. */
  readonly opIndex?: number;
  constructor(error: string, details?: string, opIndex?: number) {
    super(`ovsdb: ${error}${details ? `: ${details}` : ''}${opIndex !== undefined ? ` (operation ${opIndex})` : ''}`);
    this.name = 'OvsdbError';
    this.error = error;
    if (details !== undefined) this.details = details;
    if (opIndex !== undefined) this.opIndex = opIndex;
  }
}

/**
 * The connection failed, not the request: could not connect, closed, or no answer in time.
 * `unsent` is true when the request surely never reached the server (so retrying cannot apply
 * it twice); a call in flight when the connection dropped or timed out may have been applied.
 */
export class OvsdbConnectionError extends Error {
  readonly unsent: boolean;
  constructor(message: string, unsent: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OvsdbConnectionError';
    this.unsent = unsent;
  }
}

const log = logger('arca:ovsdb');

/** Per-call limit when the caller gives none: generous, since a transaction may hold a `wait`. */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

interface Pending {
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface RpcError {
  error?: unknown;
  details?: unknown;
}

/** Monitor request for one table (RFC 7047 §4.1.5); absent `columns` means all of them. */
export interface MonitorRequest {
  columns?: string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}

/**
 * One JSON-RPC connection to an ovsdb-server unix socket (RFC 7047). Requests are matched to
 * answers by id, so calls may overlap; `update` notifications go to the callback of the monitor
 * they name; the server's `echo` keepalives are answered (unanswered, the server drops us).
 * Emits `close` (err?: Error) once, after which every call fails with {@link OvsdbConnectionError}.
 */
export class OvsdbClient extends EventEmitter {
  private readonly pending = new Map<number, Pending>();
  private readonly monitors = new Map<string, (u: TableUpdates) => void>();
  private readonly splitter = new JsonStreamSplitter();
  private nextId = 1;
  private isClosed = false;

  private constructor(private readonly socket: Socket) {
    super();
    socket.on('data', (chunk: Buffer) => {
      let messages: string[];
      try {
        messages = this.splitter.push(chunk);
      } catch (err) {
        this.shutdown(err as Error);
        return;
      }
      for (const text of messages) this.dispatch(text);
    });
    socket.on('error', (err) => this.shutdown(err));
    socket.on('close', () => this.shutdown());
  }

  /** Connects to `socketPath`; rejects with {@link OvsdbConnectionError} (unsent) when it cannot. */
  static connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<OvsdbClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(socketPath);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new OvsdbConnectionError(`ovsdb: cannot connect to ${socketPath}: ${err.message}`, true, { cause: err }));
      };
      const timer = setTimeout(() => fail(new Error('timed out')), opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        resolve(new OvsdbClient(socket));
      });
    });
  }

  /** True once the connection is gone (closed by either side); a closed client never reopens. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Any JSON-RPC method (`get_schema`, `monitor_cond`, `lock`...): the typed methods below are
   * built on it. A non-null `error` in the answer rejects with {@link OvsdbError}.
   */
  request(method: string, params: unknown[], opts: { timeoutMs?: number } = {}): Promise<unknown> {
    if (this.isClosed) return Promise.reject(new OvsdbConnectionError('ovsdb: connection closed', true));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
      const timer = setTimeout(() => {
        // The connection stays: a late answer is dropped as unknown.
        this.pending.delete(id);
        reject(new OvsdbConnectionError(`ovsdb: no answer to ${method} in ${timeoutMs} ms`, false));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * Runs `ops` as one transaction of database `db` and returns one result per operation. Rejects
   * with {@link OvsdbError} when an operation failed (its `opIndex` says which; nothing was
   * committed) or the commit itself failed (no `opIndex`). The call's timeout is stretched past the
   * longest `wait` operation's, so a wait times out on the server, with its own error.
   */
  async transact(db: string, ops: OvsdbOp[], opts: { timeoutMs?: number } = {}): Promise<OvsdbOpResult[]> {
    let timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    for (const op of ops) if (op.op === 'wait' && op.timeout !== undefined) timeoutMs = Math.max(timeoutMs, op.timeout + 5_000);
    const results = (await this.request('transact', [db, ...ops], { timeoutMs })) as Array<OvsdbOpResult | null>;
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      if (r?.error !== undefined) throw new OvsdbError(r.error, r.details, i < ops.length ? i : undefined);
    }
    return results.slice(0, ops.length) as OvsdbOpResult[];
  }

  /**
   * Starts a monitor (RFC 7047 §4.1.5) on `requests` (table name to columns). Resolves with the
   * current contents; later changes reach `onUpdate` in the order the server committed them
   * (an exception thrown by `onUpdate` is logged, not propagated). The monitor ends with the
   * connection: after a reconnect, monitor again.
   */
  async monitor(
    db: string,
    requests: Record<string, MonitorRequest>,
    onUpdate: (u: TableUpdates) => void,
  ): Promise<{ initial: TableUpdates; cancel(): Promise<void> }> {
    const monitorId = `m${this.nextId++}`;
    // Registered before asking: the first notification may follow the reply in the same read.
    this.monitors.set(monitorId, onUpdate);
    try {
      const initial = (await this.request('monitor', [db, monitorId, requests])) as TableUpdates;
      return {
        initial,
        cancel: async () => {
          if (!this.monitors.delete(monitorId) || this.isClosed) return;
          await this.request('monitor_cancel', [monitorId]);
        },
      };
    } catch (err) {
      this.monitors.delete(monitorId);
      throw err;
    }
  }

  /** A round trip to the server (liveness check). */
  async echo(): Promise<void> {
    await this.request('echo', []);
  }

  /** The databases this server holds (`Open_vSwitch`, `OVN_Northbound`, `_Server`...). */
  async listDbs(): Promise<string[]> {
    return (await this.request('list_dbs', [])) as string[];
  }

  /** Closes the connection; calls still waiting reject with {@link OvsdbConnectionError}. */
  close(): void {
    this.shutdown();
  }

  private dispatch(text: string): void {
    let msg: { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: unknown };
    try {
      msg = JSON.parse(text);
    } catch (err) {
      this.shutdown(err as Error);
      return;
    }
    if (typeof msg.method === 'string') {
      this.onServerRequest(msg.method, msg.id, msg.params);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error !== null && msg.error !== undefined) {
      const e = msg.error as RpcError | string;
      if (typeof e === 'string') p.reject(new OvsdbError(e));
      else p.reject(new OvsdbError(String(e.error ?? 'unknown error'), e.details === undefined ? undefined : String(e.details)));
    } else {
      p.resolve(msg.result);
    }
  }

  private onServerRequest(method: string, id: unknown, params: unknown): void {
    if (method === 'echo') {
      this.socket.write(JSON.stringify({ id, result: params, error: null }));
    } else if (method === 'update' && Array.isArray(params)) {
      const cb = this.monitors.get(String(params[0]));
      try {
        cb?.(params[1] as TableUpdates);
      } catch (err) {
        // One faulty subscriber must not stop the messages behind it in this read, nor the connection.
        log.error('monitor callback failed', { monitor: params[0], error: (err as Error).message });
      }
    } else if (id !== null && id !== undefined) {
      // A request we do not serve still needs an answer, or the server would wait on it.
      this.socket.write(JSON.stringify({ id, result: null, error: { error: 'unknown method', details: method } }));
    }
  }

  private shutdown(err?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.socket.destroy();
    const why = err ? `ovsdb: connection lost: ${err.message}` : 'ovsdb: connection closed';
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new OvsdbConnectionError(why, false, { cause: err }));
    }
    this.pending.clear();
    this.monitors.clear();
    this.emit('close', err);
  }
}
