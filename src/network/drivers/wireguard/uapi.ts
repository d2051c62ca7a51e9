/**
 * WireGuard's cross-platform UAPI (https://www.wireguard.com/xplatform/) over wireguard-go's unix
 * socket, from Node: no `wg` exec on the hot path. A `set` is not atomic (a bad line leaves the
 * earlier ones applied), so callers send complete, valid documents and check with `get`.
 */
import { connect, isIPv4, isIPv6, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { isKeyHex } from './wg-keys.js';

/** One peer as the driver wants it. Keys hex. */
export interface WgPeerConfig {
  publicKey: string;
  /** `ip:port` or `[ip6]:port`. */
  endpoint?: string;
  /** CIDRs routed to this peer (WireGuard adds no kernel routes for them). */
  allowedIps: string[];
  /** Seconds; 0 or absent: off. */
  persistentKeepalive?: number;
}

/** A `set` document. */
export interface WgSetRequest {
  privateKey?: string;
  listenPort?: number;
  /** Drop every peer first (a full configuration). */
  replacePeers?: boolean;
  peers?: Array<
    WgPeerConfig & {
      /** Remove this peer (only publicKey matters then). */
      remove?: boolean;
      /** Replace the peer's allowed IPs instead of adding to them (default true). */
      replaceAllowedIps?: boolean;
    }
  >;
}

export interface WgPeerStatus {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive: number;
  /** Unix seconds of the latest handshake; 0: never. */
  lastHandshakeSec: number;
  rxBytes: number;
  txBytes: number;
}

export interface WgDeviceStatus {
  privateKey?: string;
  /** Absent when the device has no UDP socket (after a failed listen_port: port in use). */
  listenPort?: number;
  peers: WgPeerStatus[];
}

/** A UAPI error reply: `errno` as the kernel's positive number (wireguard-go sends it negative). */
export class UapiError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
}

/** errno numbers wireguard-go uses, by name: EINVAL 22 (bad line), EADDRINUSE 98 (listen port taken), EIO, EPROTO. */
export const UAPI_EINVAL = osConstants.errno.EINVAL;
export const UAPI_EADDRINUSE = osConstants.errno.EADDRINUSE;

function errnoName(errno: number): string {
  for (const [name, n] of Object.entries(osConstants.errno)) if (n === errno) return name;
  return `errno ${errno}`;
}

// ---------------------------------------------------------------------------------------------
// Validation. Every value is checked before a byte is sent: with a non-atomic `set`, a line the
// device rejects leaves the device half-configured.

function checkKey(s: string, what: string): string {
  if (!isKeyHex(s)) throw new Error(`UAPI: invalid ${what} (expected 64 lowercase hex digits)`);
  return s;
}

function checkPort(n: number, what: string, min: number): number {
  if (!Number.isInteger(n) || n < min || n > 65535) throw new Error(`UAPI: invalid ${what} ${n} (${min}..65535)`);
  return n;
}

const DECIMAL_RE = /^(0|[1-9][0-9]{0,4})$/;

/** `a.b.c.d/n` or `v6/n`; the prefix is required (wireguard-go parses allowed_ip as a prefix). */
export function isCidr(s: string): boolean {
  const slash = s.lastIndexOf('/');
  if (slash < 0) return false;
  const addr = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!DECIMAL_RE.test(bits)) return false;
  const n = Number(bits);
  if (isIPv4(addr)) return n <= 32;
  // A zone makes no sense in a route.
  if (isIPv6(addr) && !addr.includes('%')) return n <= 128;
  return false;
}

/** `ip:port` or `[ip6]:port` (wireguard-go takes addresses only: no host names). */
export function isEndpoint(s: string): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(s);
  if (!m) return false;
  const [, v6, v4, portText] = m;
  const port = Number(portText);
  if (!DECIMAL_RE.test(portText!) || port < 1 || port > 65535) return false;
  return v6 !== undefined ? isIPv6(v6) : isIPv4(v4!);
}

// ---------------------------------------------------------------------------------------------
// Documents.

/** The `set=1` text for `req` (ends with the blank line). Throws on invalid keys, ports, CIDRs. */
export function renderSet(req: WgSetRequest): string {
  const lines = ['set=1'];
  if (req.privateKey !== undefined) lines.push(`private_key=${checkKey(req.privateKey, 'private key')}`);
  if (req.listenPort !== undefined) lines.push(`listen_port=${checkPort(req.listenPort, 'listen port', 0)}`);
  if (req.replacePeers) lines.push('replace_peers=true');
  for (const peer of req.peers ?? []) {
    lines.push(`public_key=${checkKey(peer.publicKey, 'peer public key')}`);
    if (peer.remove) {
      lines.push('remove=true');
      continue;
    }
    if (peer.endpoint !== undefined) {
      if (!isEndpoint(peer.endpoint)) throw new Error(`UAPI: invalid endpoint "${peer.endpoint}" (ip:port or [ip6]:port)`);
      lines.push(`endpoint=${peer.endpoint}`);
    }
    if (peer.persistentKeepalive !== undefined) {
      const k = peer.persistentKeepalive;
      if (!Number.isInteger(k) || k < 0 || k > 65535) throw new Error(`UAPI: invalid persistent keepalive ${k} (0..65535 s)`);
      lines.push(`persistent_keepalive_interval=${k}`);
    }
    if (peer.replaceAllowedIps !== false) lines.push('replace_allowed_ips=true');
    for (const cidr of peer.allowedIps) {
      if (!isCidr(cidr)) throw new Error(`UAPI: invalid allowed IP "${cidr}" (a CIDR such as 10.0.0.2/32)`);
      lines.push(`allowed_ip=${cidr}`);
    }
  }
  return lines.join('\n') + '\n\n';
}

function parseCount(value: string, key: string): number {
  if (!/^[0-9]+$/.test(value)) throw new Error(`UAPI: bad ${key} "${value}" in get reply`);
  // Byte counters are uint64; beyond 2^53 a double is still the most useful number to show.
  return Number(value);
}

/** Parses a `get=1` reply (without or with the trailing `errno=0`). A non-zero errno throws UapiError. */
export function parseGet(text: string): WgDeviceStatus {
  const device: WgDeviceStatus = { peers: [] };
  let peer: WgPeerStatus | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`UAPI: malformed line "${line}" in get reply`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'errno') {
      const errno = replyErrno(value);
      if (errno !== 0) throw uapiError('get', errno);
      continue;
    }
    if (key === 'public_key') {
      peer = { publicKey: value, allowedIps: [], persistentKeepalive: 0, lastHandshakeSec: 0, rxBytes: 0, txBytes: 0 };
      device.peers.push(peer);
      continue;
    }
    if (peer === undefined) {
      if (key === 'private_key') device.privateKey = value;
      else if (key === 'listen_port') device.listenPort = parseCount(value, key);
      // fwmark and keys of later UAPI versions: not ours to interpret.
      continue;
    }
    switch (key) {
      case 'endpoint':
        peer.endpoint = value;
        break;
      case 'allowed_ip':
        peer.allowedIps.push(value);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = parseCount(value, key);
        break;
      case 'last_handshake_time_sec':
        peer.lastHandshakeSec = parseCount(value, key);
        break;
      case 'rx_bytes':
        peer.rxBytes = parseCount(value, key);
        break;
      case 'tx_bytes':
        peer.txBytes = parseCount(value, key);
        break;
      // protocol_version, preshared_key, last_handshake_time_nsec: nothing the driver uses.
    }
  }
  return device;
}

function replyErrno(value: string): number {
  if (!/^-?[0-9]+$/.test(value)) throw new Error(`UAPI: bad errno "${value}" in reply`);
  return Math.abs(Number(value));
}

function uapiError(op: string, errno: number): UapiError {
  return new UapiError(`UAPI ${op} failed: ${errnoName(errno)} (${errno})`, errno);
}

// ---------------------------------------------------------------------------------------------
// Transport.

/**
 * One connection per socket, kept open and used one request at a time: wireguard-go serves any
 * number of requests on a connection, and each new one costs it a goroutine and 8 KiB of bufio
 * buffers that stay resident (an idle wireguard-go's heap stays under Go's 4 MiB first-GC
 * threshold, so nothing is collected). Measured on a 10-peer network after 20 joins and leaves,
 * a connection per request left every peer ~0.5 MiB larger.
 */
interface Conn {
  sock: Socket;
  buf: string;
  /** The request in flight: fed the reply, or failed by an error or close. */
  pending?: { resolve: (reply: string) => void; reject: (err: Error) => void };
  /** Set once the connection answered a request: a failure then may be a stale one, tried again fresh. */
  used: boolean;
}

const conns = new Map<string, Conn>();
/** Requests to one socket go in turn (one reply is read per request). */
const queues = new Map<string, Promise<unknown>>();

function socketError(path: string, err: NodeJS.ErrnoException): Error {
  return Object.assign(new Error(`UAPI ${path}: ${err.message}`, { cause: err }), { code: err.code });
}

function timedOut(path: string, timeoutMs: number): Error {
  return Object.assign(new Error(`UAPI ${path}: no reply within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
}

function drop(path: string, c: Conn): void {
  if (conns.get(path) === c) conns.delete(path);
  c.sock.destroy();
}

function open(path: string, timeoutMs: number, leftMs: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const c: Conn = { sock, buf: '', used: false };
    // A listener that does not accept (a wedged process, a full backlog) fails like one that does not reply.
    const timer = setTimeout(() => {
      drop(path, c);
      reject(timedOut(path, timeoutMs));
    }, Math.max(1, leftMs));
    sock.setEncoding('utf8');
    // Held connections must not keep the daemon (or a test) alive.
    sock.unref();
    sock.once('connect', () => {
      clearTimeout(timer);
      if (sock.destroyed) return;
      conns.set(path, c);
      resolve(c);
    });
    sock.on('data', (chunk: string) => {
      c.buf += chunk;
      const end = c.buf.indexOf('\n\n');
      if (end < 0 || !c.pending) return;
      const reply = c.buf.slice(0, end + 1);
      c.buf = c.buf.slice(end + 2);
      const p = c.pending;
      c.pending = undefined;
      p.resolve(reply);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const wasOpen = conns.get(path) === c;
      drop(path, c);
      if (!wasOpen) {
        clearTimeout(timer);
        return reject(socketError(path, err));
      }
      c.pending?.reject(socketError(path, err));
      c.pending = undefined;
    });
    sock.on('close', () => {
      drop(path, c);
      c.pending?.reject(new Error(`UAPI ${path}: connection closed before the reply ended`));
      c.pending = undefined;
    });
  });
}

async function exchangeOnce(path: string, doc: string, timeoutMs: number, deadline: number): Promise<{ reply: string; reused: boolean }> {
  // Only live connections are in the map: every way one ends takes it out.
  const c = conns.get(path) ?? (await open(path, timeoutMs, deadline - performance.now()));
  const reused = c.used;
  const left = deadline - performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // A late reply would be read as the next request's: the connection goes.
      drop(path, c);
      reject(timedOut(path, timeoutMs));
    }, Math.max(1, left));
    c.pending = {
      resolve: (reply) => {
        clearTimeout(timer);
        c.used = true;
        resolve({ reply, reused });
      },
      reject: (err) => {
        clearTimeout(timer);
        reject(Object.assign(err, { reused }));
      },
    };
    c.sock.write(doc);
  });
}

/**
 * Writes `doc` to the socket and resolves with the reply up to (not including) its blank line.
 * Connection failures (ENOENT: no such device; ECONNREFUSED: a stale socket of a dead process)
 * reject with a plain Error that keeps the socket error's `code`. A held connection that fails
 * (its process restarted) is replaced once; every request here is safe to send twice.
 */
function exchange(path: string, doc: string, timeoutMs: number): Promise<string> {
  const run = async (): Promise<string> => {
    const deadline = performance.now() + timeoutMs;
    try {
      return (await exchangeOnce(path, doc, timeoutMs, deadline)).reply;
    } catch (e) {
      if (!(e as { reused?: boolean }).reused || (e as { code?: string }).code === 'ETIMEDOUT') throw e;
      return (await exchangeOnce(path, doc, timeoutMs, deadline)).reply;
    }
  };
  const next = (queues.get(path) ?? Promise.resolve()).then(run, run);
  const tail = next.catch(() => {});
  queues.set(path, tail);
  void tail.then(() => {
    if (queues.get(path) === tail) queues.delete(path);
  });
  return next;
}

/** Closes the held connection to `path` (its device is going away). */
export function uapiRelease(path: string): void {
  const c = conns.get(path);
  if (c) drop(path, c);
}

/** Sends one `set` to the socket at `path`; rejects with UapiError when errno ≠ 0, or with the socket error. */
export async function uapiSet(path: string, req: WgSetRequest, timeoutMs = 2000): Promise<void> {
  const reply = await exchange(path, renderSet(req), timeoutMs);
  const m = /^errno=(-?[0-9]+)$/m.exec(reply);
  if (!m) throw new Error(`UAPI ${path}: set reply without errno: ${JSON.stringify(reply.slice(0, 200))}`);
  const errno = replyErrno(m[1]!);
  if (errno !== 0) {
    // A set refused part-way leaves the rest of its document unread, to be taken for requests.
    uapiRelease(path);
    throw uapiError('set', errno);
  }
}

/** One `get`. */
export async function uapiGet(path: string, timeoutMs = 2000): Promise<WgDeviceStatus> {
  const reply = await exchange(path, 'get=1\n\n', timeoutMs);
  // A reply cut short would parse as a smaller device: insist on the errno line that ends it.
  if (!/(^|\n)errno=-?[0-9]+\n$/.test(reply)) throw new Error(`UAPI ${path}: get reply without errno`);
  return parseGet(reply);
}
