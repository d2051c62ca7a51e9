import type { Duplex } from 'node:stream';
import { logger, type Logger } from '../log.js';
import { FAST_PATH_COUNTERS, loadNative, type FastPathCounters, type FastPathHandle, type NativeHelpers } from '../sys/native.js';
import { Allowlist } from './allowlist.js';
import { ARP_FRAME, ARP_REQUEST, ARP_SENDER_MAC, arpOperation, arpSenderIp, arpTargetIp, writeArpReply } from './arp.js';
import {
  DHCP_CLIENT_PORT,
  DHCP_SERVER_PORT,
  DHCPACK,
  DHCPDECLINE,
  DHCPDISCOVER,
  DHCPINFORM,
  DHCPNAK,
  DHCPOFFER,
  DHCPRELEASE,
  DHCPREQUEST,
  DhcpView,
  FLAG_BROADCAST,
  parseDhcp,
  writeDhcpReply,
  type DhcpLease,
} from './dhcp-message.js';
import type { DropReason } from './drop-reasons.js';
import { newEngineStats, type EngineStats } from './engine-stats.js';
import { BROADCAST_MAC, ETH_HEADER, ETHERTYPE_IPV4, isBroadcastMac, macEquals, writeEthernetHeader } from './ethernet.js';
import { FrameStreamDecoder, LENGTH_PREFIX, type FrameHandler } from './frame-stream-decoder.js';
import { FrameView, parseFrame } from './frame-parser.js';
import { IPV4_HEADER, PROTO_UDP, writeIpv4Header } from './ipv4.js';
import { UDP_HEADER, writeUdpHeader } from './udp.js';
import { UdpFlow, type FlowErrorHandler } from './udp-flow.js';
import { DEFAULT_VM_SUBNET, parseVmSubnet, type VmSubnet } from './vm-subnet.js';

const BROADCAST_IP = 0xffffffff;
/** The largest UDP payload one 1500-byte IP packet carries: replies above it are not fragmented, they are dropped. */
export const MAX_REPLY_PAYLOAD = 1500 - IPV4_HEADER - UDP_HEADER;

export interface FilteredNatOptions {
  /** Allowed destinations, `IP:PORT/udp`; at least one. */
  allow: readonly string[];
  /** The VM's wire, default 10.77.0.0/24. */
  subnet?: string;
  /** A flow unused for this long has its host socket closed (default 120 s, conntrack's UDP stream timeout). */
  flowIdleMs?: number;
  /** Host sockets one VM may hold at once (default 256); more flows are dropped as `flow_limit`. */
  maxFlows?: number;
  leaseSeconds?: number;
  /** Replies are dropped while this much is already queued towards a VM that does not read (default 1 MiB). */
  maxQueuedBytes?: number;
  /**
   * The host sockets: 'native' the addon's (batched sendmmsg, nothing allocated per datagram),
   * 'dgram' Node's; 'auto' (the default) the addon's when it is built, else Node's.
   */
  hostSockets?: 'auto' | 'native' | 'dgram';
  /**
   * After each input (a read from the guest's stream, a reply from a host socket), the event loop
   * polls without sleeping for this many ms (the addon's busyPoll): a frame arriving meanwhile is
   * handled at once instead of after the thread is woken up (on the 2-vCPU test VM a wake-up took
   * 45-57 µs at the median and up to 0.7 ms at p99). It costs a core while traffic flows and
   * nothing once the window passes with no input. On a core shared with busy processes it loses:
   * the scheduler treats a spinning engine as a CPU hog (README). 0 (the default): off. Needs the
   * addon; without it the option has no effect (`busyPolling` says which). With `fastPath` it is
   * the forwarding thread that polls, after each read of the stream or a flow's socket.
   */
  busyPollMs?: number;
  /**
   * The addon's forwarding thread (native/arca_native.c) reads the guest's stream and forwards the
   * frames of established flows itself, and writes their replies back, with no JS per frame; every
   * other frame (ARP, DHCP, a flow's first datagram, anything odd) still comes here, in order, and
   * this engine alone opens and closes flows. Only for a stream the engine connects to itself
   * (`connectFastPath`); frames fed with `receive` take the TypeScript path. true throws when the
   * addon lacks it; 'auto' uses it when built; false (the default): off. `onForward` does not hear
   * the frames the thread forwards.
   */
  fastPath?: boolean | 'auto';
  /** Called for each datagram forwarded, with the frame it came in (diagnostics and tests). */
  onForward?: (frame: Buffer, off: number, len: number, entryIndex: number) => void;
  log?: Logger;
}

/** Where frames to the guest go, each with its 4-byte length prefix. */
export interface FrameSink {
  write(framed: Buffer): unknown;
  readonly writableLength?: number;
}

type Outcome = 'forwarded' | 'arp' | 'dhcp' | DropReason;

/**
 * FilteredNAT for one VM: the far end of its only NIC. It answers ARP for the gateway and DHCP
 * for the guest, forwards UDP to allowlisted destinations through host sockets (one per flow),
 * relays their answers back as frames, and drops and counts everything else.
 */
export class FilteredNatEngine implements FrameHandler {
  readonly subnet: VmSubnet;
  readonly allowlist: Allowlist;
  /** 02:00 and the gateway's IPv4 address: locally administered, and telling in a capture. */
  readonly gatewayMac: Buffer;
  private readonly s: EngineStats = newEngineStats();
  /** Which host sockets the flows use (see FilteredNatOptions.hostSockets). */
  readonly hostSockets: 'native' | 'dgram';
  /** The busy-poll window in effect, ms (0: the loop sleeps between inputs). */
  readonly busyPolling: number;
  /** The forwarding thread is in use (FilteredNatOptions.fastPath). */
  readonly fastPath: boolean;

  private readonly view = new FrameView();
  private readonly dhcpView = new DhcpView();
  private readonly decoder = new FrameStreamDecoder(this);
  private readonly lease: DhcpLease;
  private readonly flows = new Map<number, UdpFlow>();
  private readonly flowIdleMs: number;
  private readonly maxFlows: number;
  private readonly maxQueuedBytes: number;
  private readonly onForward: FilteredNatOptions['onForward'];
  private readonly log: Logger;
  private readonly guestMac = Buffer.alloc(6);
  private haveGuestMac = false;
  private sink: FrameSink | undefined;
  private ipId = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /** Set while the frame being handled lives in a buffer that will be reused (the decoder's, or a reused read buffer). */
  private scratch = false;
  /** Set while the chunk being decoded is a read buffer its owner reuses once `receive` returns. */
  private reusedChunk = false;
  private readonly nat: NativeHelpers | null;
  /** Flows holding datagrams for one sendmmsg: sent before the buffer they point into changes. */
  private readonly unsent: UdpFlow[] = [];
  private readonly keepPolling: ((ms: number) => void) | undefined;
  private fp: FastPathHandle | undefined;
  /** The thread's counters as it stopped: the stats file's last write comes after close. */
  private fpLast: FastPathCounters | undefined;
  /** The generation of the stream the thread reads (0: none). */
  private fpStream = 0;
  private fpOnClosed: ((code: string) => void) | undefined;
  private readonly fpNow = new Float64Array(FAST_PATH_COUNTERS.length + 1);
  private readonly fpFolded = new Float64Array(FAST_PATH_COUNTERS.length + 1);

  constructor(opts: FilteredNatOptions) {
    this.subnet = parseVmSubnet(opts.subnet ?? DEFAULT_VM_SUBNET);
    this.allowlist = new Allowlist(opts.allow, this.subnet);
    this.gatewayMac = Buffer.from([0x02, 0x00, 0, 0, 0, 0]);
    this.gatewayMac.writeUInt32BE(this.subnet.gateway, 2);
    this.lease = {
      serverIp: this.subnet.gateway,
      yiaddr: this.subnet.guest,
      mask: this.subnet.mask,
      router: this.subnet.gateway,
      dns: this.subnet.gateway,
      leaseSeconds: opts.leaseSeconds ?? 3600,
    };
    this.flowIdleMs = opts.flowIdleMs ?? 120_000;
    this.maxFlows = opts.maxFlows ?? 256;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 1 << 20;
    this.onForward = opts.onForward;
    this.nat = hostSocketHelpers(opts.hostSockets ?? 'auto');
    this.hostSockets = this.nat ? 'native' : 'dgram';
    const busy = opts.busyPollMs ?? 0;
    if (!(busy >= 0 && busy <= 60_000)) throw new RangeError(`busyPollMs ${busy}: expected 0 to 60000`);
    const wantFp = opts.fastPath ?? false;
    if (wantFp !== false) {
      const n = this.nat;
      if (n?.fastPathCreate) {
        // With the thread, it is the thread that busy-polls: the main loop sees only the odd frame.
        this.fp = n.fastPathCreate(this.gatewayMac, this.subnet.gateway, this.subnet.guest, this.maxQueuedBytes, this.onFastPathEvent, busy);
      } else if (wantFp === true) {
        throw new Error(`fastPath: the native addon's forwarding thread is not available (${n ? 'built before it existed: run scripts/build-native.sh' : (loadNative().reason ?? 'hostSockets dgram')})`);
      }
    }
    this.fastPath = this.fp !== undefined;
    const helpers = busy > 0 && !this.fp ? (this.nat ?? loadNative().helpers) : null;
    if (helpers?.busyPoll) this.keepPolling = helpers.busyPoll.bind(helpers);
    this.busyPolling = this.fp ? busy : this.keepPolling ? busy : 0;
    this.log = opts.log ?? logger('arca:vmnet');
    this.sweeper = setInterval(() => this.expireIdleFlows(), Math.max(50, Math.min(this.flowIdleMs / 2, 5000)));
    this.sweeper.unref();
  }

  /**
   * The engine's counters. With the forwarding thread, what it did is folded in at each read:
   * its frames count as forwarded (and in framesIn), its replies as repliesIn/framesOut.
   */
  get stats(): EngineStats {
    if (this.fp) this.foldFastPath();
    return this.s;
  }

  /** The forwarding thread's own counters (undefined without it): how many frames it kept, and why it passed the others on. */
  fastPathCounters(): FastPathCounters | undefined {
    if (!this.fp) return this.fpLast;
    this.nat!.fastPathStats(this.fp, this.fpNow);
    return this.countersRead();
  }

  /** The counters of the thread's last read into fpNow. */
  private countersRead(): FastPathCounters {
    const out = {} as FastPathCounters;
    FAST_PATH_COUNTERS.forEach((k, i) => (out[k] = this.fpNow[i]!));
    return out;
  }

  private foldFastPath(): void {
    const now = this.fpNow;
    this.nat!.fastPathStats(this.fp!, now);
    const d = (name: (typeof FAST_PATH_COUNTERS)[number]): number => {
      const i = FAST_PATH_COUNTERS.indexOf(name);
      const v = now[i]! - this.fpFolded[i]!;
      this.fpFolded[i] = now[i]!;
      return v;
    };
    const s = this.s;
    const fwd = d('forwarded');
    const over = d('oversize');
    s.forwarded += fwd;
    s.dropped.oversize += over;
    s.framesIn += fwd + over;
    s.repliesIn += d('repliesIn');
    s.framesOut += d('repliesOut');
    s.repliesDropped.no_guest += d('replyNoGuest');
    s.repliesDropped.too_big += d('replyTooBig');
    s.repliesDropped.backpressure += d('replyBackpressure');
    s.sendErrors += d('sendErrors');
  }

  /**
   * Connects to QEMU's unix socket at `path` and gives the stream to the forwarding thread
   * (fastPath). Throws at once when nothing listens there (ENOENT, ECONNREFUSED: retry later).
   * `onClosed` hears the stream end (QEMU closed it, or `disconnectFastPath`).
   */
  connectFastPath(path: string, onClosed: (code: string) => void): void {
    if (!this.fp) throw new Error('connectFastPath: the engine has no forwarding thread (fastPath)');
    const gen = this.nat!.fastPathConnect(this.fp, path);
    this.fpStream = gen;
    this.fpOnClosed = onClosed;
    const fp = this.fp;
    const nat = this.nat!;
    this.attach({
      write: (b) => nat.fastPathWrite(fp, b),
      get writableLength() {
        return 0;
      },
    });
    this.fpSinkGen = gen;
  }

  /** Ends the thread's stream; `onClosed` is called once the thread has let go of it. */
  disconnectFastPath(): void {
    if (this.fp && this.fpStream) this.nat!.fastPathDisconnect(this.fp);
  }

  private fpSinkGen = 0;

  private readonly onFastPathEvent = (frames: Buffer | null, length: number, closedGen: number, code: string): void => {
    if (frames) this.receiveWhole(frames, length);
    if (closedGen !== 0 && closedGen === this.fpStream) {
      this.fpStream = 0;
      if (this.fpSinkGen === closedGen) this.detach();
      const cb = this.fpOnClosed;
      this.fpOnClosed = undefined;
      cb?.(code);
    }
  };

  /** Whole frames in QEMU's framing, the first `length` bytes of the thread's hand-over buffer (reused after the call). */
  private receiveWhole(buf: Buffer, length: number): void {
    try {
      for (let i = 0; i + 4 <= length; ) {
        const len = buf.readUInt32BE(i);
        this.scratch = true;
        this.count(buf, i + LENGTH_PREFIX, len);
        i += LENGTH_PREFIX + len;
      }
    } finally {
      this.flushSends();
    }
  }

  /** Frames to the guest go to `sink` from now on. */
  attach(sink: FrameSink): void {
    this.sink = sink;
    this.decoder.reset();
  }

  detach(): void {
    this.sink = undefined;
    this.fpSinkGen = 0;
    this.decoder.reset();
  }

  /**
   * Wires the engine to a stream in QEMU's framing (a unix socket, a socketpair): bytes in, frames
   * out. The returned function undoes it; the stream closing does too. With `reads` 'external' the
   * caller feeds `receive` itself (a socket made with `onread`, reading into one reused buffer)
   * and the stream only takes the frames out.
   */
  attachStream(stream: Duplex, reads: 'data' | 'external' = 'data'): () => void {
    const onData = (chunk: Buffer): void => this.receive(chunk);
    const done = (): void => {
      if (reads === 'data') stream.off('data', onData);
      stream.off('close', done);
      if (this.sink === sink) this.detach();
    };
    const sink: FrameSink = {
      write: (b) => stream.write(b),
      get writableLength() {
        return stream.writableLength;
      },
    };
    this.attach(sink);
    if (reads === 'data') stream.on('data', onData);
    stream.on('close', done);
    return done;
  }

  /**
   * Bytes of the stream, in any chunking: the first `len` bytes of `chunk`. `reused` says the
   * caller overwrites `chunk` once this returns (a socket's read buffer): nothing keeps a view of
   * it past the call.
   */
  receive(chunk: Buffer, len = chunk.length, reused = false): void {
    if (this.keepPolling) this.keepPolling(this.busyPolling);
    this.reusedChunk = reused;
    try {
      this.decoder.push(chunk, len);
    } finally {
      this.reusedChunk = false;
      this.flushSends();
    }
  }

  /** One Ethernet frame from the guest; the buffer may be reused once this returns. */
  handleFrame(buf: Buffer, off = 0, len = buf.length - off): void {
    if (this.keepPolling) this.keepPolling(this.busyPolling);
    this.scratch = true;
    this.count(buf, off, len);
    this.flushSends();
  }

  /** @internal The decoder's callback. */
  frame(buf: Buffer, off: number, len: number): void {
    const split = this.decoder.isScratch(buf);
    this.scratch = split || this.reusedChunk;
    this.count(buf, off, len);
    // The next split frame is reassembled over this one, maybe within the same chunk.
    if (split) this.flushSends();
  }

  /** Sends the datagrams the flows gathered (native host sockets); called at the end of each input. */
  private flushSends(): void {
    const u = this.unsent;
    for (let i = 0; i < u.length; i++) u[i]!.flush();
    u.length = 0;
  }

  /** @internal The decoder's callback for a length prefix beyond MAX_FRAME. */
  oversize(): void {
    this.s.framesIn++;
    this.s.dropped.oversize++;
  }

  /** Closes flows idle for longer than the limit; runs on a timer, callable with a clock in tests. */
  expireIdleFlows(now = Date.now()): number {
    let n = 0;
    for (const [key, flow] of this.flows) {
      // The thread's datagrams count as use too.
      const ago = flow.threadIdleMs();
      const last = ago >= 0 ? Math.max(flow.lastUsed, Date.now() - ago) : flow.lastUsed;
      if (now - last < this.flowIdleMs) continue;
      flow.close();
      this.flows.delete(key);
      n++;
    }
    this.s.flowsExpired += n;
    this.s.flowsOpen = this.flows.size;
    return n;
  }

  /** Closes every host socket and stops the timer; the engine takes no frames after this. */
  close(): void {
    this.unsent.length = 0;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const flow of this.flows.values()) flow.close();
    this.flows.clear();
    this.s.flowsOpen = 0;
    if (this.fp) {
      this.foldFastPath();
      this.fpLast = this.countersRead();
      // Joins the thread and closes the stream and the flows' sockets.
      this.nat!.fastPathClose(this.fp);
      this.fp = undefined;
      this.fpStream = 0;
    }
    this.detach();
  }

  /** The host ports the open flows use, by guest port: what a peer sees. */
  flowPorts(): Array<{ guestPort: number; allow: string; hostPort: number }> {
    const out: Array<{ guestPort: number; allow: string; hostPort: number }> = [];
    for (const f of this.flows.values()) out.push({ guestPort: f.guestPort, allow: f.entry.text, hostPort: f.hostPort() });
    return out;
  }

  private count(buf: Buffer, off: number, len: number): void {
    const s = this.s;
    s.framesIn++;
    let outcome: Outcome;
    try {
      outcome = this.classify(buf, off, len);
    } catch (err) {
      s.internalErrors++;
      outcome = 'bad_frame';
      if (s.internalErrors <= 10) this.log.error(`frame handling failed: ${err instanceof Error ? err.stack : String(err)}`);
    }
    if (outcome === 'forwarded') s.forwarded++;
    else if (outcome === 'arp') s.arpReplies++;
    else if (outcome !== 'dhcp') s.dropped[outcome]++;
  }

  private classify(buf: Buffer, off: number, len: number): Outcome {
    const v = this.view;
    const c = parseFrame(buf, off, len, v);
    if (c === 'arp') return this.onArp(buf, off);
    if (c !== 'udp') return c;
    const gwMac = macEquals(buf, off, this.gatewayMac, 0);
    if (v.dstPort === DHCP_SERVER_PORT && (v.dst === BROADCAST_IP || v.dst === this.subnet.gateway) && (gwMac || isBroadcastMac(buf, off))) {
      return this.onDhcp(buf, off);
    }
    if (!gwMac) return buf[off]! & 1 ? 'udp_not_allowed' : 'not_for_us';
    if (v.src !== this.subnet.guest) return 'bad_source';
    const idx = this.allowlist.find(v.dst, v.dstPort);
    if (idx < 0) return 'udp_not_allowed';
    const key = idx * 65536 + v.srcPort;
    const now = Date.now();
    let flow = this.flows.get(key);
    if (!flow) {
      if (this.flows.size >= this.maxFlows) return 'flow_limit';
      try {
        flow = new UdpFlow(this.allowlist.entries[idx]!, idx, v.srcPort, now, this.onReply, this.onFlowError, this.nat, this.fp);
      } catch (err) {
        this.log.warn(`cannot open a host socket for ${this.allowlist.entries[idx]!.text}: ${err instanceof Error ? err.message : String(err)}`);
        return 'send_error';
      }
      this.flows.set(key, flow);
      this.s.flowsOpened++;
      this.s.flowsOpen = this.flows.size;
    }
    flow.lastUsed = now;
    this.learnGuestMac(buf, off + 6);
    if (flow.send(buf, v.payload, v.payloadLength, !this.scratch)) this.unsent.push(flow);
    if (this.onForward) this.onForward(buf, off, len, idx);
    return 'forwarded';
  }

  private learnGuestMac(buf: Buffer, at: number): void {
    if (this.haveGuestMac && macEquals(buf, at, this.guestMac, 0)) return;
    buf.copy(this.guestMac, 0, at, at + 6);
    this.haveGuestMac = true;
    // The thread forwards only frames from this MAC and addresses replies to it.
    if (this.fp) this.nat!.fastPathGuestMac(this.fp, this.guestMac);
  }

  private onArp(buf: Buffer, off: number): Outcome {
    if (!isBroadcastMac(buf, off) && !macEquals(buf, off, this.gatewayMac, 0)) return 'not_for_us';
    const a = off + ETH_HEADER;
    if (!macEquals(buf, a + ARP_SENDER_MAC, buf, off + 6)) return 'bad_frame';
    if (arpOperation(buf, a) !== ARP_REQUEST || arpTargetIp(buf, a) !== this.subnet.gateway) return 'arp_ignored';
    const sender = arpSenderIp(buf, a);
    if (sender !== this.subnet.guest && sender !== 0) return 'bad_source';
    const out = Buffer.allocUnsafe(LENGTH_PREFIX + ARP_FRAME);
    out.writeUInt32BE(ARP_FRAME, 0);
    writeArpReply(out, LENGTH_PREFIX, this.gatewayMac, this.subnet.gateway, buf, a);
    this.emit(out);
    return 'arp';
  }

  private onDhcp(buf: Buffer, off: number): Outcome {
    const v = this.view;
    if (v.srcPort !== DHCP_CLIENT_PORT) return 'udp_not_allowed';
    if (v.src !== 0 && v.src !== this.subnet.guest) return 'bad_source';
    const d = this.dhcpView;
    if (!parseDhcp(buf, v.payload, v.payloadLength, d)) return 'bad_dhcp';
    // The client's hardware address is the frame's: one guest, one MAC, no proxies.
    if (!macEquals(buf, d.off + 28, buf, off + 6)) return 'bad_dhcp';
    const c = this.s.dhcp;
    switch (d.type) {
      case DHCPDISCOVER:
        c.discover++;
        this.dhcpReply(buf, DHCPOFFER);
        break;
      case DHCPREQUEST: {
        c.request++;
        // A REQUEST naming another server is the client turning us down (RFC 2131 4.3.2).
        if (d.serverId !== 0 && d.serverId !== this.subnet.gateway) {
          c.ignored++;
          break;
        }
        const wanted = d.requestedIp || d.ciaddr;
        this.dhcpReply(buf, wanted === this.subnet.guest ? DHCPACK : DHCPNAK);
        break;
      }
      case DHCPRELEASE:
        // The address is the guest's for as long as the VM exists: nothing to free.
        c.release++;
        break;
      case DHCPDECLINE:
        c.decline++;
        this.log.warn('the guest declined its address (something else on its wire answers ARP for it?)');
        break;
      case DHCPINFORM:
        c.inform++;
        c.ignored++;
        break;
    }
    this.learnGuestMac(buf, off + 6);
    return 'dhcp';
  }

  private dhcpReply(req: Buffer, type: number): void {
    const d = this.dhcpView;
    const out = Buffer.allocUnsafe(LENGTH_PREFIX + ETH_HEADER + IPV4_HEADER + UDP_HEADER + 400);
    const udp = LENGTH_PREFIX + ETH_HEADER + IPV4_HEADER;
    const bootp = writeDhcpReply(out, udp + UDP_HEADER, req, d, type, this.lease);
    // A NAK is broadcast (the client may hold an address we refuse); otherwise unicast to the
    // chaddr and the address offered, unless the client set the broadcast flag.
    const broadcast = type === DHCPNAK || (d.flags & FLAG_BROADCAST) !== 0;
    const dstIp = broadcast ? BROADCAST_IP : type === DHCPACK && d.ciaddr !== 0 ? d.ciaddr : this.subnet.guest;
    const frameLen = ETH_HEADER + IPV4_HEADER + UDP_HEADER + bootp;
    out.writeUInt32BE(frameLen, 0);
    if (broadcast) writeEthernetHeader(out, LENGTH_PREFIX, BROADCAST_MAC, 0, this.gatewayMac, ETHERTYPE_IPV4);
    else writeEthernetHeader(out, LENGTH_PREFIX, req, d.off + 28, this.gatewayMac, ETHERTYPE_IPV4);
    writeIpv4Header(out, LENGTH_PREFIX + ETH_HEADER, IPV4_HEADER + UDP_HEADER + bootp, this.ipId++, PROTO_UDP, this.subnet.gateway, dstIp);
    writeUdpHeader(out, udp, this.subnet.gateway, DHCP_SERVER_PORT, dstIp, DHCP_CLIENT_PORT, bootp);
    const c = this.s.dhcp;
    if (type === DHCPOFFER) c.offer++;
    else if (type === DHCPACK) c.ack++;
    else c.nak++;
    this.emit(out.subarray(0, LENGTH_PREFIX + frameLen));
  }

  private readonly onReply = (flow: UdpFlow, msg: Buffer): void => {
    const s = this.s;
    s.repliesIn++;
    flow.lastUsed = Date.now();
    if (this.keepPolling) this.keepPolling(this.busyPolling);
    if (!this.haveGuestMac || !this.sink) {
      s.repliesDropped.no_guest++;
      return;
    }
    if (msg.length > MAX_REPLY_PAYLOAD) {
      s.repliesDropped.too_big++;
      return;
    }
    if ((this.sink.writableLength ?? 0) > this.maxQueuedBytes) {
      s.repliesDropped.backpressure++;
      return;
    }
    const frameLen = ETH_HEADER + IPV4_HEADER + UDP_HEADER + msg.length;
    const out = Buffer.allocUnsafe(LENGTH_PREFIX + frameLen);
    out.writeUInt32BE(frameLen, 0);
    const ip = LENGTH_PREFIX + ETH_HEADER;
    const udp = ip + IPV4_HEADER;
    writeEthernetHeader(out, LENGTH_PREFIX, this.guestMac, 0, this.gatewayMac, ETHERTYPE_IPV4);
    msg.copy(out, udp + UDP_HEADER);
    // From the destination the guest used: the gateway for a loopback entry.
    const from = flow.entry.guestIp;
    writeIpv4Header(out, ip, IPV4_HEADER + UDP_HEADER + msg.length, this.ipId++, PROTO_UDP, from, this.subnet.guest);
    writeUdpHeader(out, udp, from, flow.entry.port, this.subnet.guest, flow.guestPort, msg.length);
    this.emit(out);
  };

  private readonly onFlowError: FlowErrorHandler = (flow, what, lost) => {
    this.s.sendErrors += Math.max(1, lost);
    if (this.s.sendErrors <= 10) this.log.debug(`flow ${flow.guestPort} → ${flow.entry.text}: ${what}${lost > 1 ? ` (${lost} datagrams)` : ''}`);
  };

  private emit(framed: Buffer): void {
    if (!this.sink) {
      this.s.repliesDropped.no_guest++;
      return;
    }
    this.sink.write(framed);
    this.s.framesOut++;
  }
}

/** The addon's helpers for the host sockets, or null for Node's dgram. */
function hostSocketHelpers(want: 'auto' | 'native' | 'dgram'): NativeHelpers | null {
  if (want === 'dgram') return null;
  const { helpers, reason } = loadNativeForFlows();
  if (!helpers && want === 'native') throw new Error(`hostSockets 'native': the native addon is not available (${reason})`);
  return helpers;
}

function loadNativeForFlows(): { helpers: NativeHelpers | null; reason?: string } {
  const { helpers: n, reason } = loadNative();
  if (!n) return { helpers: null, reason };
  // An addon built before the batched send existed: Node's sockets still work.
  if (typeof n.udpSendMany !== 'function' || typeof n.udpLocalPort !== 'function') return { helpers: null, reason: 'built without udpSendMany (run scripts/build-native.sh)' };
  return { helpers: n };
}
