import { createServer, Socket, type Server } from 'node:net';
import { errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { native, type NativeHelpers, type UdpPortHandle } from '../sys/native.js';
import { DnsServer, type ContainerPorts, type EgressLearn, type UpstreamDialer } from './dns/dns-server.js';
import type { DnsSnapshot } from './dns/dns-snapshot.js';
import type { DnsListener, DnsService } from './dns-service.js';

const log = logger('arca:net:dns');

/** Where Docker's embedded resolver answers inside every container. */
export const RESOLVER_ADDRESS = '127.0.0.11';

/**
 * The embedded DNS server wired to containers.
 *
 * With the native addon (the normal case) it listens where Docker's does: UDP and TCP sockets
 * bound to 127.0.0.11:53 *inside* each container's namespace, made there by the addon and served
 * by one {@link DnsServer} in the daemon. The socket a query arrives on says which container
 * asks, and the container's namespace needs no NAT, no conntrack and no route_localnet; IPv6-only
 * networks get DNS too. A container's own `--dns` servers are asked from its namespace, the
 * host's resolvers from the daemon's, as moby does.
 *
 * Without the addon, one server per user-defined network is bound on its IPv4 gateway, all on one
 * port when they can (remembered across restarts so the redirects in running containers stay
 * right); containers reach it through a DNAT of 127.0.0.11:53 in their namespace and are told
 * apart by source address.
 */
export class EmbeddedDns implements DnsService {
  private readonly servers = new Map<string, { gateway: string; server: Promise<DnsServer> }>();
  private snapshot: DnsSnapshot = { networks: [], upstreams: [] };
  private readonly inside?: DnsServer;
  private readonly served = new Map<string, { netnsPath: string; ports: ContainerPorts }>();
  private gatewayPort: number;
  private learn?: EgressLearn;

  constructor(
    preferredPort: number,
    private readonly savePort: (port: number) => void,
    private readonly helpers: NativeHelpers | null = native(),
  ) {
    this.gatewayPort = preferredPort;
    if (helpers) this.inside = DnsServer.unbound();
  }

  /** Where upstream answers for deny networks' names go before the container gets them. */
  setEgressLearner(learn: EgressLearn | undefined): void {
    this.learn = learn;
    this.inside?.setEgressLearner(learn);
    for (const s of this.servers.values()) void s.server.then((x) => x.setEgressLearner(learn)).catch(() => {});
  }

  /** The gateway listeners' port, or null when the server listens only inside containers. */
  get port(): number | null {
    return this.inside ? null : this.gatewayPort;
  }

  async serveIn(containerId: string, netnsPath: string): Promise<boolean> {
    const n = this.helpers;
    const inside = this.inside;
    if (!n || !inside) return false;
    const had = this.served.get(containerId);
    if (had?.netnsPath === netnsPath) return true;
    if (had) await this.stopServing(containerId);
    let udpFd = -1;
    let tcp: Server | undefined;
    try {
      udpFd = n.socketIn(netnsPath, 'udp', RESOLVER_ADDRESS, 53);
      const tcpFd = n.socketIn(netnsPath, 'tcp', RESOLVER_ADDRESS, 53);
      const server = createServer({ noDelay: true });
      tcp = server;
      await new Promise<void>((res, rej) => {
        server.once('error', rej);
        server.listen({ fd: tcpFd }, () => {
          server.off('error', rej);
          res();
        });
      });
    } catch (e) {
      if (udpFd >= 0) n.closeFd(udpFd);
      tcp?.close();
      // Docker logs a resolver that cannot start and runs the container anyway.
      log.error('embedded DNS cannot listen in the container', { container: containerId.slice(0, 12), error: errorMessage(e) });
      return true;
    }
    const fd = udpFd;
    const ports = inside.serveContainer(
      containerId,
      (onMessage) => {
        const h = n.udpWatch(fd, onMessage);
        return { send: (msg, address, port) => void n.udpSend(h, msg, address, port), close: () => n.udpClose(h) };
      },
      tcp,
      (onAnswer) => containerDialer(n, netnsPath, onAnswer),
    );
    this.served.set(containerId, { netnsPath, ports });
    return true;
  }

  async stopServing(containerId: string): Promise<void> {
    const s = this.served.get(containerId);
    if (!s) return;
    this.served.delete(containerId);
    await s.ports.close();
    // udpClose gives the descriptor back from libuv's close callback, at the end of this loop
    // turn: a timer fires after it, so the namespace is no longer held once this resolves.
    await new Promise((r) => setTimeout(r, 0));
  }

  async update(snapshot: DnsSnapshot): Promise<void> {
    this.snapshot = snapshot;
    this.inside?.update(snapshot);
    const live = new Set(snapshot.networks.map((n) => n.id));
    for (const [id, s] of this.servers) {
      if (live.has(id)) continue;
      this.servers.delete(id);
      await s.server.then((x) => x.close()).catch(() => {});
    }
    for (const s of this.servers.values()) {
      await s.server.then((x) => x.update(snapshot)).catch(() => {});
    }
  }

  async listenerFor(networkId: string, gateway: string): Promise<DnsListener | undefined> {
    let s = this.servers.get(networkId);
    if (s && s.gateway !== gateway) {
      this.servers.delete(networkId);
      await s.server.then((x) => x.close()).catch(() => {});
      s = undefined;
    }
    if (!s) {
      s = { gateway, server: this.bind(gateway) };
      this.servers.set(networkId, s);
    }
    try {
      const server = await s.server;
      return { address: server.address, port: server.port };
    } catch (e) {
      this.servers.delete(networkId);
      log.error('embedded DNS server could not listen', { gateway, error: errorMessage(e) });
      return undefined;
    }
  }

  private async bind(gateway: string): Promise<DnsServer> {
    try {
      const server = await DnsServer.start({ address: gateway, port: this.gatewayPort, snapshot: this.snapshot, learn: this.learn });
      if (this.gatewayPort === 0) {
        this.gatewayPort = server.port;
        this.savePort(server.port);
      }
      return server;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || this.gatewayPort === 0) throw e;
      log.warn('DNS port taken on this gateway, using another', { gateway, port: this.gatewayPort });
      return DnsServer.start({ address: gateway, port: 0, snapshot: this.snapshot, learn: this.learn });
    }
  }

  async close(): Promise<void> {
    const all = [...this.servers.values()];
    this.servers.clear();
    this.served.clear();
    await Promise.all([...all.map((s) => s.server.then((x) => x.close()).catch(() => {})), this.inside?.close()]);
  }
}

/** Upstream sockets made in a container's namespace on first use (one UDP socket per family). */
function containerDialer(n: NativeHelpers, netnsPath: string, onAnswer: (msg: Buffer, address: string, port: number) => void): UpstreamDialer {
  const udp = new Map<4 | 6, UdpPortHandle>();
  let closed = false;
  return {
    sendUdp(msg, host, port, family) {
      if (closed) return false;
      let h = udp.get(family);
      if (!h) {
        h = n.udpWatch(n.socketIn(netnsPath, 'udp', family === 6 ? '::' : '0.0.0.0', 0), onAnswer);
        udp.set(family, h);
      }
      return n.udpSend(h, msg, host, port) === 0;
    },
    connectTcp(host, port) {
      if (closed) throw new Error('container resolver closed');
      const s = new Socket({ fd: n.socketIn(netnsPath, 'tcp-connect', host, port), readable: true, writable: true });
      s.setNoDelay(true);
      return s;
    },
    close() {
      closed = true;
      for (const h of udp.values()) n.udpClose(h);
      udp.clear();
    },
  };
}
