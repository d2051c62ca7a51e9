import dgram from 'node:dgram';
import os from 'node:os';
import type { FastPathHandle, NativeHelpers, UdpPortHandle } from '../sys/native.js';
import { formatIpv4 } from './ipv4-address.js';
import type { AllowEntry } from './allowlist.js';

/** Datagrams held while a new flow's socket connects; a guest does not send many before that. */
const MAX_PENDING = 64;
/** Datagrams a native flow gathers before it must send them (one sendmmsg). */
const BATCH = 32;

/** Called with what went wrong and how many datagrams it cost (0: a reply-side error). */
export type FlowErrorHandler = (flow: UdpFlow, what: string, lost: number) => void;

/**
 * One guest source port talking to one allowlisted destination, through a host UDP socket of its
 * own: the peer sees the host's address and this socket's port, and the kernel (the socket is
 * connected) lets only that peer's datagrams back in.
 *
 * With the native addon the socket is the addon's: datagrams are gathered as (offset, length)
 * spans of the buffer they arrived in, and `flush` hands a whole batch to one sendmmsg, so the
 * forward path makes no object per datagram (no garbage, no collector pauses at 10k frames/s).
 * Without it, Node's dgram sends each datagram as it comes.
 */
export class UdpFlow {
  lastUsed: number;
  private readonly socket: dgram.Socket | undefined;
  private pending: Buffer[] | undefined;
  private readonly nat: NativeHelpers | undefined;
  private readonly port: UdpPortHandle | undefined;
  private readonly spans: Int32Array | undefined;
  private readonly status: Int32Array | undefined;
  private batchBuf: Buffer | undefined;
  private queued = 0;
  private closed = false;
  /** The forwarding thread's slot for this flow (-1: not on the thread). */
  private readonly slot: number = -1;
  private readonly fp: FastPathHandle | undefined;

  constructor(
    readonly entry: AllowEntry,
    readonly entryIndex: number,
    readonly guestPort: number,
    now: number,
    onMessage: (flow: UdpFlow, msg: Buffer) => void,
    private readonly onError: FlowErrorHandler,
    nat: NativeHelpers | null,
    fp?: FastPathHandle,
  ) {
    this.lastUsed = now;
    if (nat && fp) {
      // The thread owns the socket: it reads the replies and sends what it matches itself.
      const fd = nat.socketIn(null, 'udp-connect', formatIpv4(entry.hostIp), entry.port);
      this.nat = nat;
      this.fp = fp;
      try {
        this.slot = nat.fastPathAddFlow(fp, fd, entry.guestIp, entry.port, guestPort);
      } catch (err) {
        nat.closeFd(fd);
        throw err;
      }
      return;
    }
    if (nat) {
      // A connected UDP socket is ready at once: no queue while it connects.
      const fd = nat.socketIn(null, 'udp-connect', formatIpv4(entry.hostIp), entry.port);
      this.nat = nat;
      this.spans = new Int32Array(2 * BATCH);
      this.status = new Int32Array(2);
      this.port = nat.udpWatch(fd, (msg) => onMessage(this, msg), { onError: (code) => onError(this, code, 0) });
      return;
    }
    this.pending = [];
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (msg) => onMessage(this, msg));
    this.socket.on('error', (err) => onError(this, err.message, 1));
    this.socket.connect(entry.port, formatIpv4(entry.hostIp), () => {
      const queued = this.pending ?? [];
      this.pending = undefined;
      if (this.closed) return;
      for (const b of queued) this.socket!.send(b);
    });
  }

  /**
   * Sends `len` bytes of `buf` from `off`, or (native) queues them until `flush`, which the caller
   * must call before `buf` changes; true when this datagram is the first queued since the last
   * flush. `stable` says the caller will not reuse the buffer: only then can libuv keep a view of
   * it for a send it has to queue.
   */
  send(buf: Buffer, off: number, len: number, stable: boolean): boolean {
    if (this.closed) return false;
    if (this.fp) {
      const rc = this.nat!.fastPathSend(this.fp, this.slot, buf, off, len);
      if (rc < 0) this.onError(this, errnoName(-rc), 1);
      return false;
    }
    if (this.spans) {
      if (this.queued === BATCH || (this.queued > 0 && this.batchBuf !== buf)) this.flush();
      this.batchBuf = buf;
      this.spans[2 * this.queued] = off;
      this.spans[2 * this.queued + 1] = len;
      return ++this.queued === 1;
    }
    if (this.pending) {
      if (this.pending.length < MAX_PENDING) this.pending.push(Buffer.from(buf.subarray(off, off + len)));
      return false;
    }
    if (stable) this.socket!.send(buf, off, len);
    else this.socket!.send(Buffer.from(buf.subarray(off, off + len)));
    return false;
  }

  /** Sends what `send` queued (native); a no-op otherwise. */
  flush(): void {
    const n = this.queued;
    if (n === 0) return;
    this.queued = 0;
    const buf = this.batchBuf!;
    this.batchBuf = undefined;
    if (this.closed) return;
    const sent = this.nat!.udpSendMany(this.port!, buf, this.spans!, n, this.status);
    if (sent < n) this.onError(this, this.status![0] ? errnoName(this.status![0]) : 'not sent', n - sent);
  }

  /** The host port the peer sees (0 before the socket is bound). */
  hostPort(): number {
    if (this.fp) return this.nat!.fastPathFlowInfo(this.fp, this.slot)[1];
    if (this.port) return this.nat!.udpLocalPort(this.port);
    try {
      return this.socket!.address().port;
    } catch {
      return 0;
    }
  }

  /** ms since the forwarding thread last moved one of this flow's datagrams; -1 if never or not on the thread. */
  threadIdleMs(): number {
    if (!this.fp || this.closed) return -1;
    return this.nat!.fastPathFlowInfo(this.fp, this.slot)[0];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queued = 0;
    this.batchBuf = undefined;
    if (this.fp) {
      this.nat!.fastPathRemoveFlow(this.fp, this.slot);
      return;
    }
    if (this.port) {
      this.nat!.udpClose(this.port);
      return;
    }
    try {
      this.socket!.close();
    } catch {
      // Already closed by an error: nothing left to release.
    }
  }
}

const ERRNO_NAMES = new Map<number, string>();
function errnoName(e: number): string {
  if (ERRNO_NAMES.size === 0) for (const [name, n] of Object.entries(os.constants.errno)) ERRNO_NAMES.set(n, name);
  return ERRNO_NAMES.get(e) ?? `errno ${e}`;
}
