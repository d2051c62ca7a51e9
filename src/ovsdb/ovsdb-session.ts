import { setTimeout as sleep } from 'node:timers/promises';
import { OvsdbClient, OvsdbConnectionError } from './ovsdb-client.js';
import type { OvsdbOp, OvsdbOpResult } from './ovsdb-values.js';

/** How long to give a restarting server before the one retry (ovsdb-server is up in 50–80 ms here). */
const DEFAULT_RETRY_DELAY_MS = 250;

/**
 * A lazily (re)connecting handle on one database of one ovsdb-server socket. It connects on first
 * use and again after the connection closed (the server restarted), so a restart costs at most the
 * call that was in flight. A call is retried once, after a short wait, only when it surely never
 * reached the server (connection refused or already closed): a call lost in flight may have been
 * committed, and {@link OvsdbError}s are answers, so neither is retried.
 */
export class OvsdbSession {
  private current?: OvsdbClient;
  private connecting?: Promise<OvsdbClient>;
  private isClosed = false;
  private readonly retryDelayMs: number;
  private readonly connectTimeoutMs?: number;

  constructor(
    readonly socketPath: string,
    readonly db: string,
    opts: { retryDelayMs?: number; connectTimeoutMs?: number } = {},
  ) {
    this.retryDelayMs = opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    if (opts.connectTimeoutMs !== undefined) this.connectTimeoutMs = opts.connectTimeoutMs;
  }

  /** Runs a transaction on the session's database (see {@link OvsdbClient.transact}). */
  transact(ops: OvsdbOp[], opts: { timeoutMs?: number } = {}): Promise<OvsdbOpResult[]> {
    return this.withRetry((c) => c.transact(this.db, ops, opts));
  }

  /** The live connection, opened if needed (for monitors and other requests). */
  async client(): Promise<OvsdbClient> {
    if (this.isClosed) throw new OvsdbConnectionError('ovsdb: session closed', true);
    if (this.current && !this.current.closed) return this.current;
    // Concurrent callers share one connection attempt.
    this.connecting ??= OvsdbClient.connect(this.socketPath, this.connectTimeoutMs === undefined ? {} : { timeoutMs: this.connectTimeoutMs })
      .then((c) => {
        if (this.isClosed) c.close();
        else this.current = c;
        return c;
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  /** Closes the connection; later calls fail. */
  close(): void {
    this.isClosed = true;
    this.current?.close();
    this.current = undefined;
  }

  private async withRetry<T>(call: (c: OvsdbClient) => Promise<T>): Promise<T> {
    try {
      return await call(await this.client());
    } catch (err) {
      if (!(err instanceof OvsdbConnectionError) || !err.unsent || this.isClosed) throw err;
      await sleep(this.retryDelayMs);
      return await call(await this.client());
    }
  }
}
