/**
 * Host-port reservations, in memory. The NetworkManager persists what was allocated (SQLite) and
 * calls {@link PortAllocator.reserve} again for each stored binding at start-up; the allocator
 * itself has no second, recovery-only code path.
 *
 * Conflicts are per (protocol, port) and address family: two bindings clash when they use the
 * same address, or when either is the family's wildcard (`0.0.0.0` covers every IPv4 address,
 * `::` every IPv6 address). `0.0.0.0` and `::` do not clash (IPv6 sockets are v6-only here).
 *
 * **Holding the port.** Docker's docker-proxy (and the daemon itself since v28 when the proxy is
 * off) keeps the host port open for the container's lifetime. We do the same through a
 * {@link PortBinder}: each reservation opens a listening TCP socket / bound UDP socket on the
 * host address and keeps it until release. Why:
 *   - a host program that already uses the port makes `docker run -p` fail at once, as with
 *     Docker, instead of the DNAT silently stealing that program's traffic;
 *   - no host program can take the port later, while the DNAT rule sends its traffic elsewhere;
 *   - the ephemeral allocator never hands out a port the host is using.
 * The sockets never see published traffic: DNAT rewrites packets before socket lookup. A stray
 * TCP connection that does reach one (nothing matches the DNAT) is closed at once. The cost is
 * one file descriptor per published port and address. SCTP is not held (Node cannot open it).
 */
import { readFile } from 'node:fs/promises';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server } from 'node:net';
import { ArcaError, Conflict, InvalidParameter, SystemError } from '../../errors.js';
import { logger } from '../../log.js';
import { hostIpsFor, type HostIpDefaults, type PortProto, type PortRequest, type PublishedPort } from './port-spec.js';

const log = logger('arca:net:ports');

/** Docker's fallback when the kernel's range cannot be read. */
export const DEFAULT_EPHEMERAL_RANGE: PortRange = { start: 49153, end: 65535 };

export interface PortRange {
  start: number;
  end: number;
}

/** Docker's "port is already allocated" conflict (exact wording). */
export class PortAlreadyAllocated extends Conflict {
  constructor(
    readonly hostIp: string,
    readonly port: number,
  ) {
    super(`Bind for ${hostIp}:${port} failed: port is already allocated`);
  }
}

/** The host port is in use by another program on the host. */
export class PortInUse extends Conflict {
  constructor(hostIp: string, port: number, proto: PortProto, cause?: unknown) {
    super(`failed to bind host port ${hostIp}:${port}/${proto}: address already in use`, { cause });
  }
}

/** Something that keeps a host port open until closed. */
export interface HeldPort {
  close(): void;
}

/** Opens host ports; the default opens real sockets, tests may swap it. */
export interface PortBinder {
  /** Throws {@link PortInUse} if the port is taken on the host. */
  hold(hostIp: string, proto: PortProto, port: number): Promise<HeldPort>;
}

const NOTHING_HELD: HeldPort = { close() {} };

/** Binds real sockets in the daemon's network namespace. */
export class SocketPortBinder implements PortBinder {
  async hold(hostIp: string, proto: PortProto, port: number): Promise<HeldPort> {
    if (proto === 'sctp') return NOTHING_HELD;
    const v6 = isIPv6(hostIp);
    try {
      if (proto === 'tcp') return await holdTcp(hostIp, port, v6);
      return await holdUdp(hostIp, port, v6);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EACCES') throw new PortInUse(hostIp, port, proto, err);
      // A host without IPv6 cannot hold '::'; Docker skips that binding there, the rule stays.
      if (v6 && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
        log.warn(`cannot hold [${hostIp}]:${port}/${proto}: ${code}; continuing without`);
        return NOTHING_HELD;
      }
      throw new SystemError(`cannot bind host port ${hostIp}:${port}/${proto}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function holdTcp(host: string, port: number, ipv6Only: boolean): Promise<HeldPort> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((sock) => sock.destroy());
    server.once('error', reject);
    server.listen({ host, port, ipv6Only, exclusive: true, backlog: 1 }, () => {
      server.off('error', reject);
      server.on('error', () => {});
      server.unref();
      resolve({ close: () => server.close() });
    });
  });
}

function holdUdp(address: string, port: number, ipv6Only: boolean): Promise<HeldPort> {
  return new Promise((resolve, reject) => {
    const sock: UdpSocket = createSocket({ type: ipv6Only ? 'udp6' : 'udp4', ipv6Only, reuseAddr: false });
    sock.once('error', reject);
    sock.on('message', () => {});
    sock.bind({ address, port, exclusive: true }, () => {
      sock.off('error', reject);
      sock.on('error', () => {});
      sock.unref();
      resolve({ close: () => sock.close() });
    });
  });
}

/** Only bookkeeping, no sockets (for tests, or when the operator opts out). */
export class NullPortBinder implements PortBinder {
  async hold(): Promise<HeldPort> {
    return NOTHING_HELD;
  }
}

/** Reads the kernel's ephemeral range as Docker does, falling back to 49153-65535. */
export async function ephemeralPortRange(path = '/proc/sys/net/ipv4/ip_local_port_range'): Promise<PortRange> {
  try {
    const m = /^\s*([0-9]+)\s+([0-9]+)\s*$/.exec(await readFile(path, 'utf8'));
    if (m) {
      const start = Number(m[1]);
      const end = Number(m[2]);
      if (start >= 1 && end <= 65535 && start <= end) return { start, end };
    }
  } catch {
    /* fall back */
  }
  return DEFAULT_EPHEMERAL_RANGE;
}

export interface PortAllocatorOptions {
  /** Default: {@link SocketPortBinder}. */
  binder?: PortBinder;
  /** Range for HostPort '' / '0'. Default: read once from the kernel on first use. */
  ephemeral?: PortRange;
}

type Family = 4 | 6;

interface Reservation {
  hostIp: string;
  fam: Family;
  wildcard: boolean;
  held: HeldPort;
}

function familyOf(ip: string): Family {
  return isIPv6(ip) ? 6 : 4;
}

export class PortAllocator {
  private readonly binder: PortBinder;
  private ephemeral?: PortRange;
  /** `proto/port` → reservations on that port. */
  private readonly used = new Map<string, Reservation[]>();
  /** Last ephemeral port handed out per protocol: the next search starts after it (as Docker). */
  private readonly last = new Map<PortProto, number>();
  /** Serialises reservations so two concurrent requests cannot take one port. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: PortAllocatorOptions = {}) {
    this.binder = opts.binder ?? new SocketPortBinder();
    this.ephemeral = opts.ephemeral;
  }

  /** True if `hostIp:port/proto` is reserved, or covered by a reservation (wildcards). */
  isAllocated(hostIp: string, proto: PortProto, port: number): boolean {
    return this.conflict(this.norm(hostIp), proto, port) !== undefined;
  }

  /**
   * Reserves exactly `port` on every address of `hostIps`, all or nothing. Throws
   * {@link PortAlreadyAllocated} or {@link PortInUse}.
   */
  reserve(hostIps: readonly string[], proto: PortProto, port: number): Promise<void> {
    return this.serial(() => this.reserveNow(hostIps.map((ip) => this.norm(ip)), proto, port));
  }

  /**
   * Reserves the first port of `range` (default: the ephemeral range, searched round-robin
   * from the last port given out) that is free on every address of `hostIps`; returns it.
   */
  allocate(hostIps: readonly string[], proto: PortProto, range?: PortRange): Promise<number> {
    return this.serial(async () => {
      const ips = hostIps.map((ip) => this.norm(ip));
      const ephemeral = range === undefined;
      const r = range ?? (this.ephemeral ??= await ephemeralPortRange());
      if (r.start < 1 || r.end > 65535 || r.start > r.end) throw new InvalidParameter(`invalid port range ${r.start}-${r.end}`);
      const size = r.end - r.start + 1;
      const from = ephemeral ? ((this.last.get(proto) ?? r.end) + 1 - r.start + size) % size : 0;
      for (let i = 0; i < size; i++) {
        const port = r.start + ((from + i) % size);
        if (ips.some((ip) => this.conflict(ip, proto, port))) continue;
        try {
          await this.reserveNow(ips, proto, port);
        } catch (err) {
          if (err instanceof PortInUse) continue; // a host program has it: try the next one
          throw err;
        }
        if (ephemeral) this.last.set(proto, port);
        return port;
      }
      if (!ephemeral && size === 1) throw new PortAlreadyAllocated(ips[0] ?? '0.0.0.0', r.start);
      throw new Conflict('all ports are allocated');
    });
  }

  /** Drops the reservations (and closes the held sockets). Unknown ones are ignored. */
  release(hostIps: readonly string[], proto: PortProto, port: number): void {
    const key = `${proto}/${port}`;
    const list = this.used.get(key);
    if (!list) return;
    for (const ip of hostIps.map((x) => this.norm(x))) {
      const i = list.findIndex((r) => r.hostIp === ip);
      if (i >= 0) {
        list[i]!.held.close();
        list.splice(i, 1);
      }
    }
    if (!list.length) this.used.delete(key);
  }

  /**
   * Allocates every request of a container (fixed ports, ranges, ephemeral ports), all or
   * nothing: on a failure, what was reserved so far is released again.
   */
  async allocateAll(requests: readonly PortRequest[], defaults: HostIpDefaults = {}): Promise<PublishedPort[]> {
    const done: PublishedPort[] = [];
    try {
      for (const req of requests) {
        const ips = hostIpsFor(req.hostIp, defaults);
        let port: number;
        if (req.hostPort !== 0 && req.hostPort === req.hostPortEnd) {
          await this.reserve(ips, req.proto, req.hostPort);
          port = req.hostPort;
        } else if (req.hostPort === 0) {
          port = await this.allocate(ips, req.proto);
        } else {
          port = await this.allocate(ips, req.proto, { start: req.hostPort, end: req.hostPortEnd });
        }
        for (const hostIp of ips) done.push({ proto: req.proto, containerPort: req.containerPort, hostIp, hostPort: port });
      }
    } catch (err) {
      this.releaseAll(done);
      throw err;
    }
    return done;
  }

  /** Releases what {@link allocateAll} returned (or what was re-reserved from the database). */
  releaseAll(published: readonly PublishedPort[]): void {
    for (const p of published) this.release([p.hostIp], p.proto, p.hostPort);
  }

  /** Re-reserves stored bindings at start-up, all or nothing. */
  async reserveAll(published: readonly PublishedPort[]): Promise<void> {
    const done: PublishedPort[] = [];
    try {
      for (const p of published) {
        await this.reserve([p.hostIp], p.proto, p.hostPort);
        done.push(p);
      }
    } catch (err) {
      this.releaseAll(done);
      throw err;
    }
  }

  private norm(ip: string): string {
    return ip === '' ? '0.0.0.0' : ip;
  }

  private conflict(hostIp: string, proto: PortProto, port: number): Reservation | undefined {
    const fam = familyOf(hostIp);
    const wildcard = hostIp === '0.0.0.0' || hostIp === '::';
    return this.used
      .get(`${proto}/${port}`)
      ?.find((r) => r.hostIp === hostIp || (r.fam === fam && (r.wildcard || wildcard)));
  }

  private async reserveNow(ips: string[], proto: PortProto, port: number): Promise<void> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidParameter(`invalid port specification: "${port}"`);
    for (const [i, ip] of ips.entries()) {
      if (this.conflict(ip, proto, port)) throw new PortAlreadyAllocated(ip, port);
      // Two addresses of one request that cover each other (`0.0.0.0` and `127.0.0.1`).
      const fam = familyOf(ip);
      const clash = ips
        .slice(0, i)
        .some((o) => o === ip || (familyOf(o) === fam && [o, ip].some((x) => x === '0.0.0.0' || x === '::')));
      if (clash) throw new PortAlreadyAllocated(ip, port);
    }
    const held: Reservation[] = [];
    const key = `${proto}/${port}`;
    try {
      for (const ip of ips) {
        const r: Reservation = {
          hostIp: ip,
          fam: familyOf(ip),
          wildcard: ip === '0.0.0.0' || ip === '::',
          held: await this.binder.hold(ip, proto, port),
        };
        held.push(r);
        let list = this.used.get(key);
        if (!list) this.used.set(key, (list = []));
        list.push(r);
      }
    } catch (err) {
      this.release(
        held.map((r) => r.hostIp),
        proto,
        port,
      );
      throw err instanceof ArcaError ? err : new SystemError(String(err), { cause: err });
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}
