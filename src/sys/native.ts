import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The functions of build/arca_native.node (native/arca_native.c). */
export interface NativeHelpers {
  /** A NETLINK_ROUTE socket bound in the namespace at `nsPath` (the daemon's own when omitted). */
  netlinkOpen(nsPath?: string | null): number;
  /** Sends `request`; resolves with every reply datagram once `terminals` ACK/ERROR/DONE arrived. */
  netlinkRequest(fd: number, request: Buffer, terminals: number): Promise<Buffer>;
  closeFd(fd: number): void;
  /** libnftables.so.1 could be opened. */
  nftAvailable(): boolean;
  /** Runs an nft script in-process: [exit code, output, error text]. */
  nftRun(text: string, nsPath?: string | null): Promise<[number, string, string]>;
  /** Writes a file (a /proc/sys key) as the namespace at `nsPath` sees it. */
  writeFileIn(nsPath: string | null, path: string, data: string): Promise<void>;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  umount(target: string, flags: number): Promise<void>;
  /**
   * A non-blocking socket created in the namespace at `nsPath`: it stays in that namespace
   * whatever thread uses it. 'udp' is bound to address:port, 'tcp' bound and listening,
   * 'tcp-connect' connecting to address:port, 'udp-connect' connected to address:port (an
   * ephemeral local port; only that peer's datagrams come in). Throws with an errno `code`.
   */
  socketIn(nsPath: string | null, kind: 'udp' | 'tcp' | 'tcp-connect' | 'udp-connect', address: string, port: number): number;
  /**
   * Reads the UDP socket `fd` from Node's loop, calling `onMessage` per datagram; owns `fd` from
   * now on. `onError` hears a connected socket's errors (an ICMP unreachable: the socket keeps
   * being read); with `timestamps`, `rxTime` is when the kernel received the datagram, on
   * process.hrtime's clock.
   */
  udpWatch(
    fd: number,
    onMessage: (msg: Buffer, address: string, port: number, rxTime?: bigint) => void,
    options?: { onError?: (code: string) => void; timestamps?: boolean },
  ): UdpPortHandle;
  /** Sends without blocking: 0, or -errno (a full send buffer drops the datagram, as UDP may). */
  udpSend(port: UdpPortHandle, msg: Buffer, address: string, portNumber: number): number;
  /**
   * Sends `count` datagrams `buf[spans[2i], spans[2i] + spans[2i+1])` on a connected socket
   * (sendmmsg, nothing kept: `buf` may be reused at once); returns how many went. `status`, if
   * given, gets the first errno of a datagram lost (0 if none) and how many were lost.
   */
  udpSendMany(port: UdpPortHandle, buf: Buffer, spans: Int32Array, count: number, status?: Int32Array): number;
  /** The local port the socket is bound to (0 once closed). */
  udpLocalPort(port: UdpPortHandle): number;
  /** Stops reading and closes the socket; closing twice is harmless. */
  udpClose(port: UdpPortHandle): void;
  /**
   * Process `pid`'s IPv4/IPv6 UDP sockets get receive and send buffers of at least `bytes`
   * (SO_RCVBUFFORCE/SO_SNDBUFFORCE on duplicates from pidfd_getfd): [UDP sockets found, raised].
   */
  raiseUdpBuffers(pid: number, bytes: number): [number, number];
  /**
   * The main loop polls without sleeping (libuv's poll with timeout 0: a core's worth of CPU)
   * until at least `ms` from now; calls only ever extend it. Input is then seen within one loop
   * iteration instead of after the thread is woken from epoll. The loop still exits when nothing
   * else holds it. Absent from addons built before it existed.
   */
  busyPoll?(ms: number): void;
  /**
   * FilteredNAT's forwarding thread for one engine (see native/arca_native.c): it reads the
   * guest's stream and forwards frames of the flows installed with fastPathAddFlow itself, and
   * calls `onEvent` on the main thread with the frames it left to the engine (framed, in order)
   * and with the generation of a stream that ended (0: none) and why. Absent from older addons.
   * The thread is named "arca-fnat".
   */
  fastPathCreate?(
    gatewayMac: Buffer,
    gatewayIp: number,
    guestIp: number,
    maxQueuedBytes: number,
    /** `frames` holds `length` bytes of them, valid only during the call (the buffer is reused). */
    onEvent: (frames: Buffer | null, length: number, closedGeneration: number, code: string) => void,
    /** After each input the thread polls without sleeping for this long (0: it sleeps at once). */
    spinMs?: number,
  ): FastPathHandle;
  /** Connects to a unix socket (QEMU's stream netdev) and hands it to the thread: its generation. Throws with an errno code. */
  fastPathConnect(h: FastPathHandle, path: string): number;
  /** Ends the stream; its end is reported through onEvent. */
  fastPathDisconnect(h: FastPathHandle): void;
  fastPathGuestMac(h: FastPathHandle, mac: Buffer | null): void;
  /** The thread owns `fd` (a connected UDP socket) from now on: frames to dstIp:dstPort from guestPort go out on it. */
  fastPathAddFlow(h: FastPathHandle, fd: number, dstIp: number, dstPort: number, guestPort: number): number;
  fastPathRemoveFlow(h: FastPathHandle, slot: number): void;
  /** Sends on a flow's socket from the main thread: 0 or -errno. */
  fastPathSend(h: FastPathHandle, slot: number, buf: Buffer, off: number, len: number): number;
  /** Writes framed bytes to the guest (queued behind the thread's); false when there is no stream. */
  fastPathWrite(h: FastPathHandle, framed: Buffer): boolean;
  /** [ms since the thread last moved a datagram of the flow (-1: never), its local port]. */
  fastPathFlowInfo(h: FastPathHandle, slot: number): [number, number];
  /** The thread's counters (FAST_PATH_COUNTERS order), then the bytes queued to the guest. */
  fastPathStats(h: FastPathHandle, out: Float64Array): void;
  /** The slot the thread would forward this frame on, or -1 (tests). */
  fastPathMatch(h: FastPathHandle, buf: Buffer, off: number, len: number): number;
  /** Stops and joins the thread, closes the stream and every flow socket. */
  fastPathClose(h: FastPathHandle): void;
}

/** An opaque handle from {@link NativeHelpers.fastPathCreate}. */
export type FastPathHandle = { readonly __fastPath: unique symbol };

/** The forwarding thread's counters, in the order fastPathStats gives them. */
export const FAST_PATH_COUNTERS = [
  'forwarded',
  'oversize',
  'punted',
  'puntedNotUdp',
  'puntedNoFlow',
  'puntedOrder',
  'repliesIn',
  'repliesOut',
  'replyNoGuest',
  'replyTooBig',
  'replyBackpressure',
  'sendErrors',
  'streamReads',
  'puntedGuestMac',
] as const;
export type FastPathCounters = Record<(typeof FAST_PATH_COUNTERS)[number], number>;

/** An opaque handle from {@link NativeHelpers.udpWatch}. */
export type UdpPortHandle = { readonly __udpPort: unique symbol };

export const MNT_DETACH = 2;

let cached: { helpers: NativeHelpers | null; reason?: string } | undefined;

/** The repository root, from dist/src/sys or src/sys. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return dir;
}

/**
 * The native helpers, or null (with the reason) when the addon was not built or does not load,
 * in which case callers fall back to exec'ing `ip` and `nft`. ARCA_NATIVE=0 forces the fallback.
 */
export function loadNative(): { helpers: NativeHelpers | null; reason?: string } {
  if (cached) return cached;
  if (process.env.ARCA_NATIVE === '0') return (cached = { helpers: null, reason: 'disabled by ARCA_NATIVE=0' });
  const file = join(repoRoot(), 'build', 'arca_native.node');
  try {
    const helpers = createRequire(import.meta.url)(file) as NativeHelpers;
    cached = { helpers };
  } catch (err) {
    cached = { helpers: null, reason: `${file}: ${(err as Error).message}` };
  }
  return cached;
}

/** Replaces the helpers (null: behave as if the addon were missing); undefined loads them again. Tests. */
export function setNative(helpers: NativeHelpers | null | undefined): void {
  cached = helpers === undefined ? undefined : { helpers, reason: helpers ? undefined : 'replaced by setNative(null)' };
}

export function native(): NativeHelpers | null {
  return loadNative().helpers;
}
