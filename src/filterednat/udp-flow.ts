import dgram from 'node:dgram';
import { formatIpv4 } from './ipv4-address.js';
import type { AllowEntry } from './allowlist.js';

/** Datagrams held while a new flow's socket connects; a guest does not send many before that. */
const MAX_PENDING = 64;

/**
 * One guest source port talking to one allowlisted destination, through a host UDP socket of its
 * own: the peer sees the host's address and this socket's port, and the kernel (the socket is
 * connected) lets only that peer's datagrams back in.
 */
export class UdpFlow {
  readonly socket: dgram.Socket;
  lastUsed: number;
  private pending: Buffer[] | undefined = [];
  private closed = false;

  constructor(
    readonly entry: AllowEntry,
    readonly entryIndex: number,
    readonly guestPort: number,
    now: number,
    onMessage: (flow: UdpFlow, msg: Buffer) => void,
    onError: (flow: UdpFlow, err: Error) => void,
  ) {
    this.lastUsed = now;
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (msg) => onMessage(this, msg));
    this.socket.on('error', (err) => onError(this, err));
    this.socket.connect(entry.port, formatIpv4(entry.hostIp), () => {
      const queued = this.pending ?? [];
      this.pending = undefined;
      if (this.closed) return;
      for (const b of queued) this.socket.send(b);
    });
  }

  /**
   * Sends `len` bytes of `buf` from `off`. `stable` says the caller will not reuse the buffer:
   * only then can libuv keep a view of it for a send it has to queue.
   */
  send(buf: Buffer, off: number, len: number, stable: boolean): void {
    if (this.pending) {
      if (this.pending.length < MAX_PENDING) this.pending.push(Buffer.from(buf.subarray(off, off + len)));
      return;
    }
    if (stable) this.socket.send(buf, off, len);
    else this.socket.send(Buffer.from(buf.subarray(off, off + len)));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.socket.close();
    } catch {
      // Already closed by an error: nothing left to release.
    }
  }
}
