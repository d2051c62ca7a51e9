import { lstatSync } from 'node:fs';
import net from 'node:net';
import { InvalidParameter } from '../errors.js';
import type { Logger } from '../log.js';
import type { FilteredNatEngine } from './filtered-nat-engine.js';

/**
 * Throws unless `path` is a unix socket or does not exist yet (QEMU makes it when it starts
 * listening). Anything else there (a file, a folder) would never become QEMU's socket.
 */
export function checkSocketPath(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new InvalidParameter(`--socket ${path}: ${(err as Error).message}`);
  }
  if (!st.isSocket()) throw new InvalidParameter(`--socket ${path}: exists and is not a socket (QEMU's -netdev stream,server=on,addr.type=unix,addr.path=... makes it)`);
}

/**
 * Connects an engine to the unix socket QEMU listens on (`-netdev stream,server=on`), waiting
 * for the socket to appear, and connects again whenever QEMU drops the connection and listens
 * anew (a guest reboot keeps the socket; a QEMU restart makes a new one at the same path).
 */
export class QemuStreamClient {
  connected = false;
  /** Successful connections so far. */
  connections = 0;
  private socket: net.Socket | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private waitingLogged = false;
  private readonly readBuffer = Buffer.allocUnsafe(64 * 1024);

  constructor(
    private readonly path: string,
    private readonly engine: FilteredNatEngine,
    private readonly log: Logger,
    private readonly onFatal: (err: Error) => void,
    private readonly retryMs = 100,
  ) {}

  start(): void {
    this.attempt();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.socket?.destroy();
    this.socket = undefined;
    if (this.engine.fastPath) this.engine.disconnectFastPath();
  }

  private attempt(): void {
    this.retry = undefined;
    if (this.stopped) return;
    try {
      checkSocketPath(this.path);
    } catch (err) {
      this.onFatal(err as Error);
      return;
    }
    if (this.engine.fastPath) {
      this.attemptFastPath();
      return;
    }
    let attached = false;
    // Reads land in one buffer, reused: no allocation per read on the hot path (the engine keeps
    // no view of it past `receive`).
    const sock = net.connect({
      path: this.path,
      onread: {
        buffer: this.readBuffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          if (attached && this.socket === sock) this.engine.receive(buf as Buffer, n, true);
          return true; // false would pause the socket
        },
      },
    });
    this.socket = sock;
    sock.setNoDelay?.(true);
    sock.on('connect', () => {
      this.connected = true;
      this.connections++;
      this.waitingLogged = false;
      attached = true;
      this.engine.attachStream(sock, 'external');
      this.log.info(`connected to ${this.path}`);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (attached) this.log.warn(`${this.path}: ${err.message}`);
      else if (!this.waitingLogged && err.code !== 'ENOENT' && err.code !== 'ECONNREFUSED') this.log.warn(`${this.path}: ${err.message}; retrying`);
    });
    sock.on('close', () => {
      if (this.socket === sock) this.socket = undefined;
      if (attached) {
        this.connected = false;
        this.log.info(`${this.path}: QEMU closed the connection; waiting for it to listen again`);
      } else if (!this.waitingLogged) {
        this.waitingLogged = true;
        this.log.info(`waiting for QEMU to listen on ${this.path}`);
      }
      if (!this.stopped) this.retry = setTimeout(() => this.attempt(), this.retryMs);
    });
  }

  /** The same, with the engine's forwarding thread reading the stream (the connect is the addon's). */
  private attemptFastPath(): void {
    try {
      this.engine.connectFastPath(this.path, (code) => {
        this.connected = false;
        if (code !== 'EOF') this.log.warn(`${this.path}: ${code}`);
        this.log.info(`${this.path}: QEMU closed the connection; waiting for it to listen again`);
        if (!this.stopped) this.retry = setTimeout(() => this.attempt(), this.retryMs);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!this.waitingLogged) {
        this.waitingLogged = true;
        // EAGAIN: QEMU's listen backlog is full (it has not accepted yet); like the others, try again.
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED' && code !== 'EAGAIN') this.log.warn(`${this.path}: ${(err as Error).message}; retrying`);
        else this.log.info(`waiting for QEMU to listen on ${this.path}`);
      }
      this.retry = setTimeout(() => this.attempt(), this.retryMs);
      return;
    }
    this.connected = true;
    this.connections++;
    this.waitingLogged = false;
    this.log.info(`connected to ${this.path}`);
  }
}
