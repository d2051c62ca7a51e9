/**
 * The embedded DNS server: answers containers' queries over UDP and TCP from a {@link DnsIndex}
 * swapped whole on every change, and forwards other names to the asking container's `--dns`
 * servers, or else to the host's upstream resolvers.
 *
 * Two ways in. Normally the server binds nothing itself: {@link DnsServer.serveContainer} hands it
 * sockets bound to 127.0.0.11:53 inside one container's namespace, so whoever writes to them is
 * that container. Without the native addon, {@link DnsServer.start} binds it on an address
 * containers can reach (a bridge gateway on a high port, with a DNAT from 127.0.0.11:53 in each
 * container's namespace) and askers are told apart by source address.
 *
 * Denial-of-service limits (aardvark-dns CVE-2024-8418 and CVE-2026-35406 were TCP clients that
 * stalled or exhausted the server): nothing is read without a bound, a TCP connection holds at
 * most one partial frame and stops reading while it has too many queries in flight or unsent
 * output, connections are capped overall and per client and closed when idle, and forwards are
 * capped per client (moby's 1024, answered REFUSED beyond it).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, type Server, type Socket } from 'node:net';
import { randomFillSync } from 'node:crypto';
import { logger } from '../../log.js';
import type { DnsSnapshot } from './dns-snapshot.js';
import { DnsFormatError, DnsRcode, HEADER_SIZE, canonicalAddress, parseQuery, type ParsedQuery } from './dns-codec.js';
import { DnsIndex, answerLocally, buildResponse, truncateResponse, udpLimit, type DnsAsker } from './dns-resolver.js';
import { MAX_UPSTREAMS, parseUpstream, type Upstream } from './dns-upstreams.js';
import { learntFromAnswer, type EgressDnsView } from '../egress/egress-dns.js';
import type { EgressLearnt } from '../firewall/firewall.js';

/**
 * Puts an answer's addresses into a deny network's allowlist; the answer waits for it, at most
 * {@link LEARN_WAIT_MS} (then it goes anyway: a slow firewall must not stall every lookup).
 */
export type EgressLearn = (items: EgressLearnt[]) => Promise<void>;
export const LEARN_WAIT_MS = 1000;

const log = logger('arca:net:dns');

export interface DnsServerOptions {
  /** Address to bind UDP and TCP to (e.g. a bridge gateway, or 127.0.0.1 in tests). */
  address: string;
  /** Port for both UDP and TCP; 0 picks a free port, reported by {@link DnsServer.port}. */
  port: number;
  /** The first snapshot; an empty one if absent. */
  snapshot?: DnsSnapshot;
  /** See {@link EgressLearn}; also settable later with {@link DnsServer.setEgressLearner}. */
  learn?: EgressLearn;
  /**
   * Maps a query's source address (and port) to the container asking, by id. Default: the
   * container whose endpoint in the current snapshot has that address. Unknown clients are
   * answered REFUSED, so the server is never an open resolver.
   */
  identify?: (sourceAddress: string, sourcePort: number) => string | undefined;
  /** Per upstream attempt (moby `extIOTimeout`: 4 s). */
  upstreamTimeoutMs?: number;
  /** Concurrent forwards per client before REFUSED (moby `maxConcurrent`: 1024). */
  maxForwardsPerClient?: number;
  /** A TCP connection with nothing read or written for this long is closed. */
  tcpIdleTimeoutMs?: number;
  /** Open TCP connections in all. */
  maxTcpConnections?: number;
  /** Open TCP connections from one source address. */
  maxTcpConnectionsPerClient?: number;
  /** Queries one TCP connection may have in flight before the server stops reading it. */
  maxTcpQueriesPerConnection?: number;
}

/** One forwarded query, tried against each upstream in turn. */
interface Forward {
  query: Buffer;
  parsed: ParsedQuery;
  clientKey: string;
  upstreams: readonly Upstream[];
  attempt: number;
  maxSize: number;
  tcp: boolean;
  /** Set when the upstreams are reached from the asking container's namespace. */
  via?: UpstreamDialer;
  /** The asker's deny networks' name rules (answers are learnt before they are passed on). */
  egress?: readonly EgressDnsView[];
  reply: (msg: Buffer) => void;
  /** The id the current UDP attempt carries upstream (remapped so forwards never mix). */
  wireId: number;
  upstream?: Upstream;
  timer?: NodeJS.Timeout;
  conn?: Socket;
  done: boolean;
}

/**
 * A UDP socket made outside Node (inside a container's namespace, by the native addon), already
 * delivering its datagrams to the callback it was opened with.
 */
export interface DatagramPort {
  send(msg: Buffer, address: string, port: number): void;
  close(): void;
}

/**
 * Reaches upstream resolvers from inside one container's namespace: moby forwards a container's
 * own `--dns` servers from there (its routes, its loopback), and the host's from the host's.
 */
export interface UpstreamDialer {
  /** Sends one query; false if it could not be sent (the next upstream is tried). */
  sendUdp(msg: Buffer, host: string, port: number, family: 4 | 6): boolean;
  /** A TCP connection, possibly still being made: writes wait for it. Throws if it cannot start. */
  connectTcp(host: string, port: number): Socket;
  close(): void;
}

/** One container's resolver sockets, from {@link DnsServer.serveContainer}. */
export interface ContainerPorts {
  close(): Promise<void>;
}

interface TcpClient {
  socket: Socket;
  address: string;
  /** Who the per-client limits count against: the container, or the source address. */
  key: string;
  containerId?: string;
  pending: Buffer | null;
  inFlight: number;
  writeBlocked: boolean;
}

const TCP_FRAME_MAX = 2 + 65535;

/** Random 16-bit ids, drawn in batches (query ids must be unpredictable: RFC 5452). */
class IdSource {
  private readonly pool = new Uint16Array(1024);
  private next = this.pool.length;
  take(): number {
    if (this.next === this.pool.length) {
      randomFillSync(this.pool);
      this.next = 0;
    }
    return this.pool[this.next++]!;
  }
}

function sameQuestion(a: Uint8Array, b: Uint8Array, end: number): boolean {
  if (b.length < end) return false;
  for (let i = HEADER_SIZE; i < end; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export class DnsServer {
  private index: DnsIndex;
  private upstreams: readonly Upstream[] = [];
  /** Parsed per-container (`--dns`) upstreams of the current index's askers. */
  private askerUpstreams = new WeakMap<DnsAsker, readonly Upstream[]>();
  private udp?: UdpSocket;
  private tcp?: Server;
  private readonly upstreamSockets = new Map<4 | 6, UdpSocket>();
  private readonly forwardsById = new Map<number, Forward>();
  private readonly forwardsByClient = new Map<string, number>();
  private readonly tcpClients = new Set<TcpClient>();
  private readonly tcpByClient = new Map<string, number>();
  private readonly containerPorts = new Set<ContainerPorts>();
  private readonly dialers = new Map<string, UpstreamDialer>();
  private readonly ids = new IdSource();
  private boundPort = 0;
  private closed = false;
  private learn?: EgressLearn;

  private readonly upstreamTimeoutMs: number;
  private readonly maxForwardsPerClient: number;
  private readonly tcpIdleTimeoutMs: number;
  private readonly maxTcpConnections: number;
  private readonly maxTcpConnectionsPerClient: number;
  private readonly maxTcpQueriesPerConnection: number;

  private constructor(private readonly options: DnsServerOptions) {
    this.upstreamTimeoutMs = options.upstreamTimeoutMs ?? 4000;
    this.maxForwardsPerClient = options.maxForwardsPerClient ?? 1024;
    this.tcpIdleTimeoutMs = options.tcpIdleTimeoutMs ?? 10_000;
    this.maxTcpConnections = options.maxTcpConnections ?? 512;
    this.maxTcpConnectionsPerClient = options.maxTcpConnectionsPerClient ?? 32;
    this.maxTcpQueriesPerConnection = options.maxTcpQueriesPerConnection ?? 32;
    this.index = DnsIndex.empty;
    this.learn = options.learn;
    if (options.snapshot) this.update(options.snapshot);
  }

  /** A server that binds nothing: it answers on the sockets {@link serveContainer} gives it. */
  static unbound(options: Omit<DnsServerOptions, 'address' | 'port'> = {}): DnsServer {
    return new DnsServer({ ...options, address: '', port: 0 });
  }

  /** Binds UDP and TCP on the same address and port and starts answering. */
  static async start(options: DnsServerOptions): Promise<DnsServer> {
    const server = new DnsServer(options);
    await server.bind();
    return server;
  }

  /** The bound address. */
  get address(): string {
    return this.options.address;
  }

  /** The bound port (UDP and TCP). */
  get port(): number {
    return this.boundPort;
  }

  setEgressLearner(learn: EgressLearn | undefined): void {
    this.learn = learn;
  }

  /** Swaps in a new snapshot: every query after this call sees it, none sees a mix. */
  update(snapshot: DnsSnapshot): void {
    this.setIndex(DnsIndex.build(snapshot));
  }

  /** Swaps in an index already built (one index can serve several servers). */
  setIndex(index: DnsIndex): void {
    this.index = index;
    this.askerUpstreams = new WeakMap();
    this.upstreams = this.parseUpstreams(index.upstreams);
  }

  /** Upstream texts as socket addresses: at most three, invalid ones and this server left out. */
  private parseUpstreams(texts: readonly string[]): Upstream[] {
    const own = this.boundPort ? `${this.options.address}:${this.boundPort}` : '';
    const ups: Upstream[] = [];
    for (const text of texts.slice(0, MAX_UPSTREAMS)) {
      const u = parseUpstream(text);
      if (!u) {
        log.warn('ignoring an invalid upstream resolver', { upstream: text });
        continue;
      }
      // Forwarding to ourselves would loop until every attempt timed out.
      if (`${u.host}:${u.port}` === own || (u.host === '127.0.0.11' && u.port === 53)) continue;
      ups.push(u);
    }
    return ups;
  }

  /**
   * Where to forward for this asker: its own `--dns` servers (parsed once per index), else the
   * host's. A container whose `--dns` list is all invalid gets SERVFAIL rather than the host's
   * resolvers, as it asked not to use them.
   */
  private upstreamsFor(asker: DnsAsker): readonly Upstream[] {
    if (!asker.upstreams) return this.upstreams;
    let ups = this.askerUpstreams.get(asker);
    if (!ups) this.askerUpstreams.set(asker, (ups = this.parseUpstreams(asker.upstreams)));
    return ups;
  }

  /** Stops listening, abandons forwards and closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.forwardsById.values()) this.finish(f);
    for (const c of this.tcpClients) c.socket.destroy();
    const ports = [...this.containerPorts];
    for (const s of this.upstreamSockets.values()) s.close();
    this.upstreamSockets.clear();
    await Promise.all([
      new Promise<void>((res) => (this.udp ? this.udp.close(() => res()) : res())),
      new Promise<void>((res) => (this.tcp ? this.tcp.close(() => res()) : res())),
      ...ports.map((p) => p.close()),
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Binding

  private async bind(): Promise<void> {
    const family = isIPv6(this.options.address) ? 'udp6' : 'udp4';
    // With port 0 the UDP port is chosen first; if TCP cannot have the same one, try again.
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket({ type: family });
      await new Promise<void>((res, rej) => {
        udp.once('error', rej);
        udp.bind({ address: this.options.address, port: this.options.port, exclusive: true }, () => {
          udp.off('error', rej);
          res();
        });
      });
      const port = udp.address().port;
      const tcp = createServer({ noDelay: true }, (s) => this.onTcpConnection(s));
      try {
        await new Promise<void>((res, rej) => {
          tcp.once('error', rej);
          tcp.listen({ host: this.options.address, port, exclusive: true }, () => {
            tcp.off('error', rej);
            res();
          });
        });
      } catch (err) {
        udp.close();
        if (this.options.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 20) continue;
        throw err;
      }
      try {
        // Bursts (and the benchmark) outrun the default receive buffer; the kernel caps this at rmem_max.
        udp.setRecvBufferSize(4 << 20);
      } catch {
        /* keep the default */
      }
      udp.on('message', (msg, rinfo) => this.onUdpMessage(msg, rinfo));
      udp.on('error', (err) => log.warn('UDP socket error', { error: err.message }));
      tcp.on('error', (err) => log.warn('TCP listener error', { error: err.message }));
      this.udp = udp;
      this.tcp = tcp;
      this.boundPort = port;
      this.setIndex(this.index);
      log.debug('listening', { address: this.options.address, port });
      return;
    }
  }

  /**
   * Answers on one container's own sockets (bound to 127.0.0.11:53 in its namespace): every
   * query on them is that container's. `openUdp` is called once with the server's handler; the
   * TCP listener, if any, is adopted and closed with the rest.
   */
  serveContainer(
    containerId: string,
    openUdp: (onMessage: (msg: Buffer, address: string, port: number) => void) => DatagramPort,
    tcp?: Server,
    openDialer?: (onAnswer: (msg: Buffer, address: string, port: number) => void) => UpstreamDialer,
  ): ContainerPorts {
    let udp: DatagramPort | undefined;
    const onMessage = (msg: Buffer, address: string, port: number): void => {
      if (this.closed || !udp) return;
      const to = udp;
      this.handle(msg, address, port, containerId, false, (out) => to.send(out, address, port));
    };
    udp = openUdp(onMessage);
    // Answers count only on the socket their query left by (a container cannot answer for another).
    const dialer: UpstreamDialer | undefined = openDialer?.((msg, address, port) => this.onUpstreamUdp(msg, address, port, dialer));
    if (dialer) this.dialers.set(containerId, dialer);
    const clients = new Set<TcpClient>();
    if (tcp) {
      tcp.on('connection', (s: Socket) => {
        const c = this.onTcpConnection(s, containerId);
        if (c) {
          clients.add(c);
          s.on('close', () => clients.delete(c));
        }
      });
      tcp.on('error', (err) => log.warn('TCP listener error', { container: containerId.slice(0, 12), error: err.message }));
    }
    let closing: Promise<void> | undefined;
    const ports: ContainerPorts = {
      close: () => {
        closing ??= new Promise<void>((res) => {
          this.containerPorts.delete(ports);
          udp?.close();
          udp = undefined;
          if (dialer) {
            if (this.dialers.get(containerId) === dialer) this.dialers.delete(containerId);
            dialer.close();
          }
          for (const c of clients) c.socket.destroy();
          if (tcp?.listening) tcp.close(() => res());
          else res();
        });
        return closing;
      },
    };
    this.containerPorts.add(ports);
    return ports;
  }

  private askerFor(address: string, port: number, containerId: string | undefined): DnsAsker | undefined {
    const index = this.index;
    if (containerId !== undefined) return index.askerByContainer(containerId);
    if (this.options.identify) {
      const id = this.options.identify(address, port);
      return id === undefined ? undefined : index.askerByContainer(id);
    }
    return index.askerByAddress(address);
  }

  // -------------------------------------------------------------------------------------------
  // Serving

  /**
   * Answers one query, synchronously when it is ours. Returns false if the message was dropped
   * (malformed, or itself a response: answering those could start a loop between servers).
   */
  private handle(msg: Buffer, address: string, port: number, containerId: string | undefined, tcp: boolean, reply: (out: Buffer) => void): boolean {
    if (msg.length < HEADER_SIZE || (msg[2]! & 0x80) !== 0) return false;
    let parsed: ParsedQuery;
    try {
      parsed = parseQuery(msg);
    } catch (err) {
      if (err instanceof DnsFormatError) return false;
      throw err;
    }
    const maxSize = tcp ? 65535 : udpLimit(parsed);
    const asker = this.askerFor(address, port, containerId);
    if (!asker) {
      reply(buildResponse(msg, parsed, DnsRcode.REFUSED, [], maxSize));
      return true;
    }
    const index = this.index;
    const local = answerLocally(index, asker, msg, parsed, maxSize);
    if (local) {
      reply(local);
      return true;
    }
    // A container's own `--dns` servers are asked from its namespace when it is served in there.
    const via = asker.upstreams ? this.dialers.get(asker.containerId) : undefined;
    this.forward(msg, parsed, asker.containerId, this.upstreamsFor(asker), maxSize, tcp, reply, via, asker.egress);
    return true;
  }

  private onUdpMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const udp = this.udp;
    if (!udp || this.closed) return;
    this.handle(msg, rinfo.address, rinfo.port, undefined, false, (out) => udp.send(out, rinfo.port, rinfo.address));
  }

  private onTcpConnection(socket: Socket, containerId?: string): TcpClient | undefined {
    const address = socket.remoteAddress ?? '';
    const key = containerId ?? address;
    const fromHere = this.tcpByClient.get(key) ?? 0;
    if (this.closed || this.tcpClients.size >= this.maxTcpConnections || fromHere >= this.maxTcpConnectionsPerClient) {
      socket.destroy();
      return undefined;
    }
    socket.setNoDelay(true);
    const client: TcpClient = { socket, address, key, containerId, pending: null, inFlight: 0, writeBlocked: false };
    this.tcpClients.add(client);
    this.tcpByClient.set(key, fromHere + 1);
    socket.setTimeout(this.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      client.pending = client.pending ? Buffer.concat([client.pending, chunk]) : chunk;
      this.drainTcp(client);
    });
    socket.on('drain', () => {
      client.writeBlocked = false;
      this.drainTcp(client);
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.tcpClients.delete(client);
      const n = (this.tcpByClient.get(key) ?? 1) - 1;
      if (n > 0) this.tcpByClient.set(key, n);
      else this.tcpByClient.delete(key);
      client.pending = null;
    });
    return client;
  }

  /** Handles the complete frames a connection has buffered, as far as its limits allow. */
  private drainTcp(client: TcpClient): void {
    const { socket } = client;
    while (client.pending && !socket.destroyed) {
      if (client.inFlight >= this.maxTcpQueriesPerConnection || client.writeBlocked) break;
      const buf = client.pending;
      if (buf.length < 2) break;
      const len = buf.readUInt16BE(0);
      if (len < HEADER_SIZE) {
        socket.destroy();
        return;
      }
      if (buf.length < 2 + len) break;
      const msg = buf.subarray(2, 2 + len);
      client.pending = buf.length === 2 + len ? null : buf.subarray(2 + len);
      client.inFlight++;
      let synchronous = true;
      const ok = this.handle(msg, client.address, socket.remotePort ?? 0, client.containerId, true, (out) => {
        client.inFlight--;
        if (socket.destroyed) return;
        if (!socket.write(frame(out))) client.writeBlocked = true;
        if (!synchronous) this.drainTcp(client);
      });
      synchronous = false;
      if (!ok) {
        // RFC 7766 §8: a connection that sends garbage is closed.
        socket.destroy();
        return;
      }
    }
    // Stop reading while a limit holds, so a client cannot make us buffer without bound.
    const hold = client.inFlight >= this.maxTcpQueriesPerConnection || client.writeBlocked || (client.pending?.length ?? 0) >= TCP_FRAME_MAX;
    if (hold && !socket.isPaused()) socket.pause();
    else if (!hold && socket.isPaused()) socket.resume();
  }

  // -------------------------------------------------------------------------------------------
  // Forwarding

  private forward(
    msg: Buffer,
    parsed: ParsedQuery,
    clientKey: string,
    upstreams: readonly Upstream[],
    maxSize: number,
    tcp: boolean,
    reply: (out: Buffer) => void,
    via?: UpstreamDialer,
    egress?: readonly EgressDnsView[],
  ): void {
    if (upstreams.length === 0) {
      reply(buildResponse(msg, parsed, DnsRcode.SERVFAIL, [], maxSize));
      return;
    }
    const active = this.forwardsByClient.get(clientKey) ?? 0;
    if (active >= this.maxForwardsPerClient || this.forwardsById.size >= 60_000) {
      log.debug('too many forwards in flight; refusing', { client: clientKey });
      reply(buildResponse(msg, parsed, DnsRcode.REFUSED, [], maxSize));
      return;
    }
    this.forwardsByClient.set(clientKey, active + 1);
    const f: Forward = {
      query: Buffer.from(msg),
      parsed,
      clientKey,
      upstreams,
      attempt: -1,
      maxSize,
      tcp,
      via,
      egress,
      reply,
      wireId: -1,
      done: false,
    };
    this.nextAttempt(f);
  }

  /** Ends a forward's bookkeeping (timer, id, connection, per-client count). */
  private finish(f: Forward): void {
    if (f.done) return;
    f.done = true;
    if (f.timer) clearTimeout(f.timer);
    if (f.wireId >= 0 && this.forwardsById.get(f.wireId) === f) this.forwardsById.delete(f.wireId);
    f.conn?.destroy();
    const n = (this.forwardsByClient.get(f.clientKey) ?? 1) - 1;
    if (n > 0) this.forwardsByClient.set(f.clientKey, n);
    else this.forwardsByClient.delete(f.clientKey);
  }

  private nextAttempt(f: Forward): void {
    if (f.done || this.closed) return;
    if (f.timer) clearTimeout(f.timer);
    if (f.wireId >= 0 && this.forwardsById.get(f.wireId) === f) this.forwardsById.delete(f.wireId);
    f.wireId = -1;
    f.conn?.destroy();
    f.conn = undefined;
    f.attempt++;
    if (f.attempt >= f.upstreams.length) {
      this.finish(f);
      f.query.writeUInt16BE(f.parsed.id, 0);
      f.reply(buildResponse(f.query, f.parsed, DnsRcode.SERVFAIL, [], f.maxSize));
      return;
    }
    const upstream = f.upstreams[f.attempt]!;
    f.upstream = upstream;
    f.timer = setTimeout(() => {
      log.debug('upstream timed out', { upstream: upstream.host, port: upstream.port });
      this.nextAttempt(f);
    }, this.upstreamTimeoutMs);
    if (f.tcp) this.sendTcp(f, upstream);
    else this.sendUdp(f, upstream);
  }

  /** Upstream answers for a forward: pass them on, or try the next upstream on SERVFAIL/REFUSED. */
  private onUpstreamAnswer(f: Forward, answer: Buffer): void {
    const rcode = answer[3]! & 0xf;
    if (rcode === DnsRcode.SERVFAIL || rcode === DnsRcode.REFUSED) {
      log.debug('upstream failed; trying the next', { upstream: f.upstream?.host, rcode });
      this.nextAttempt(f);
      return;
    }
    this.finish(f);
    answer.writeUInt16BE(f.parsed.id, 0);
    const out = truncateResponse(answer, f.parsed.questionEnd, f.maxSize);
    const learn = this.learn;
    const items = f.egress && learn ? learntFromAnswer(f.egress, f.parsed.name, answer) : [];
    if (!items.length || !learn) {
      f.reply(out);
      return;
    }
    // The answer waits until the firewall has its addresses: no race with the first packet.
    let sent = false;
    const send = (): void => {
      if (sent) return;
      sent = true;
      clearTimeout(timer);
      f.reply(out);
    };
    const timer = setTimeout(() => {
      log.warn('egress learning is slow; answering anyway', { name: f.parsed.name });
      send();
    }, LEARN_WAIT_MS);
    learn(items).then(send, (err: unknown) => {
      log.warn('egress learning failed', { name: f.parsed.name, error: (err as Error).message });
      send();
    });
  }

  private upstreamSocket(family: 4 | 6): UdpSocket {
    let s = this.upstreamSockets.get(family);
    if (s) return s;
    s = createSocket(family === 6 ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => this.onUpstreamUdp(msg, rinfo.address, rinfo.port));
    s.on('error', (err) => log.warn('upstream socket error', { error: err.message }));
    // Bound to an ephemeral port by the first send.
    this.upstreamSockets.set(family, s);
    return s;
  }

  private sendUdp(f: Forward, upstream: Upstream): void {
    let id = this.ids.take();
    while (this.forwardsById.has(id)) id = this.ids.take();
    f.wireId = id;
    this.forwardsById.set(id, f);
    f.query.writeUInt16BE(id, 0);
    if (f.via) {
      let sent = false;
      try {
        sent = f.via.sendUdp(f.query, upstream.host, upstream.port, upstream.family);
      } catch (err) {
        log.debug('sending to upstream failed', { upstream: upstream.host, error: (err as Error).message });
      }
      if (!sent) this.retrySoon(f);
      return;
    }
    this.upstreamSocket(upstream.family).send(f.query, upstream.port, upstream.host, (err) => {
      if (err && f.wireId === id) {
        log.debug('sending to upstream failed', { upstream: upstream.host, error: err.message });
        this.nextAttempt(f);
      }
    });
  }

  /** The next upstream, after the current call stack (a failed send must not recurse). */
  private retrySoon(f: Forward): void {
    const attempt = f.attempt;
    setImmediate(() => {
      if (f.attempt === attempt) this.nextAttempt(f);
    });
  }

  private onUpstreamUdp(msg: Buffer, address: string, port: number, from?: UpstreamDialer): void {
    if (msg.length < HEADER_SIZE || (msg[2]! & 0x80) === 0) return;
    const f = this.forwardsById.get(msg.readUInt16BE(0));
    const u = f?.upstream;
    // Accept only the upstream we asked, on the socket we asked from, answering our question (RFC 5452 §9.1).
    if (!f || !u || f.tcp || f.via !== from || port !== u.port || canonicalAddress(address) !== canonicalAddress(u.host)) return;
    if (!sameQuestion(f.query, msg, f.parsed.questionEnd)) return;
    this.onUpstreamAnswer(f, msg);
  }

  private sendTcp(f: Forward, upstream: Upstream): void {
    let conn: Socket;
    try {
      conn = f.via ? f.via.connectTcp(upstream.host, upstream.port) : connect({ host: upstream.host, port: upstream.port, noDelay: true });
    } catch (err) {
      log.debug('connecting to upstream failed', { upstream: upstream.host, error: (err as Error).message });
      this.retrySoon(f);
      return;
    }
    f.conn = conn;
    let buf: Buffer | null = null;
    f.query.writeUInt16BE(f.parsed.id, 0);
    // A socket from the dialer is adopted while connecting: its writes wait for the connection.
    if (f.via) conn.write(frame(f.query));
    else conn.on('connect', () => conn.write(frame(f.query)));
    conn.on('data', (chunk: Buffer) => {
      buf = buf ? Buffer.concat([buf, chunk]) : chunk;
      if (buf.length > TCP_FRAME_MAX) buf = buf.subarray(0, TCP_FRAME_MAX);
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) return;
      const msg = Buffer.from(buf.subarray(2, 2 + len));
      if (f.conn !== conn) return;
      if (len < HEADER_SIZE || msg.readUInt16BE(0) !== f.parsed.id || !sameQuestion(f.query, msg, f.parsed.questionEnd)) {
        this.nextAttempt(f);
        return;
      }
      this.onUpstreamAnswer(f, msg);
    });
    conn.on('error', () => {
      if (f.conn === conn) this.nextAttempt(f);
    });
    conn.on('close', () => {
      if (f.conn === conn && !f.done) this.nextAttempt(f);
    });
  }
}
