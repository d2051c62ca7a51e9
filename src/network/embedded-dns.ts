import { errorMessage } from '../errors.js';
import { logger } from '../log.js';
import { DnsServer } from './dns/dns-server.js';
import type { DnsSnapshot } from './dns/dns-snapshot.js';
import type { DnsListener, DnsService } from './dns-service.js';

const log = logger('arca:net:dns');

/**
 * The embedded DNS server wired to networks: one {@link DnsServer} per user-defined network, bound
 * on its IPv4 gateway, all on one port when they can (remembered across restarts so the
 * redirects in running containers stay right). Containers reach it through a DNAT of
 * 127.0.0.11:53 inside their namespace; the server tells askers apart by source address.
 */
export class EmbeddedDns implements DnsService {
  private readonly servers = new Map<string, { gateway: string; server: Promise<DnsServer> }>();
  private snapshot: DnsSnapshot = { networks: [], upstreams: [] };
  port: number;

  constructor(
    preferredPort: number,
    private readonly savePort: (port: number) => void,
  ) {
    this.port = preferredPort;
  }

  async update(snapshot: DnsSnapshot): Promise<void> {
    this.snapshot = snapshot;
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
      const server = await DnsServer.start({ address: gateway, port: this.port, snapshot: this.snapshot });
      if (this.port === 0) {
        this.port = server.port;
        this.savePort(server.port);
      }
      return server;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || this.port === 0) throw e;
      log.warn('DNS port taken on this gateway, using another', { gateway, port: this.port });
      return DnsServer.start({ address: gateway, port: 0, snapshot: this.snapshot });
    }
  }

  async close(): Promise<void> {
    const all = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(all.map((s) => s.server.then((x) => x.close()).catch(() => {})));
  }
}
