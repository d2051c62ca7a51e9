import type Database from 'better-sqlite3';
import { KeyedLock } from '../keyed-lock.js';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Conflict, Forbidden, InvalidParameter, NotFound, SystemError } from '../errors.js';
import { errorMessage } from '../errors.js';
import { logger } from '../log.js';
import type { ContainerRecord } from '../containers/container-record.js';
import { forEmbeddedResolver, renderHosts, usesEmbeddedResolver } from '../containers/etc-files.js';
import { linkEnvironment, parseLink } from '../containers/legacy-links.js';
import type { DnsSnapshot } from './dns/dns-snapshot.js';
import type { DnsService } from './dns-service.js';
import { applyDnsRedirect } from './dns-redirect.js';
import {
  type DriverAddresses,
  type DriverEndpoint,
  type DriverNetwork,
  type NetworkDriver,
  type Sandbox,
  isFirewallContributor,
  isGatewaySwitcher,
  isKernelSweeper,
  isLiveAttach,
  isReapplier,
  isSupervised,
  isVirtualNames,
  isEndpointStatusReporter,
  isEndpointNamesKeeper,
} from './driver.js';
import type { DriverRegistry } from './driver-registry.js';
import { DEFAULT_BRIDGE_NAME, OPT_BRIDGE_NAME } from './drivers/bridge/bridge-driver.js';
import { isEgressLearner, type Firewall, type FirewallState } from './firewall/firewall.js';
import type { EgressLearnt } from './firewall/firewall.js';
import { parseEgressOptions } from './egress/egress-options.js';
import { describeEgress, type EgressView } from './egress/egress-status.js';
import { DEFAULT_BRIDGE_SUBNET } from './ipam/default/default-ipam.js';
import { Prefix, parseIp } from './ipam/ip-address.js';
import type { Ipam, IpamConfigEntry, IpamPool } from './ipam/ipam.js';
import type { NetworkAttacher } from './network-attacher.js';
import { firewallPorts } from './ports/firewall-ports.js';
import type { PortAllocator } from './ports/port-allocator.js';
import { exposedPorts, networkSettingsPorts, portRequests, psPorts, type ContainerPortConfig, type PublishedPort } from './ports/port-spec.js';
import { OPT_HOST_BINDING } from './drivers/bridge/bridge-driver.js';
import { type Attachment, type EndpointRecord, type EndpointRequest, type NetworkRecord, networkView } from './network-record.js';
import { NO_EVENTS, type EventSink } from '../events/event-bus.js';
import { goDurationMs } from '../go-duration.js';
import type { PolicyEnforcement, PolicyNetworks } from './policies/policy-enforcement.js';
import { buildPolicyWorld } from './policies/policy-world.js';

const log = logger('arca:net');

const PREDEFINED = ['bridge', 'host', 'none'] as const;

/** What the network layer needs from the container side. */
export interface ContainerDirectory {
  find(ref: string): ContainerRecord | undefined;
  all(): ContainerRecord[];
  /** The container's folder (holds the bind-mounted `hosts`). */
  dir(id: string): string;
  /** The container's netns path ('' for host). */
  sandboxKey(c: ContainerRecord): string;
}

/** `POST /networks/create` after JSON decoding. */
export interface NetworkCreateRequest {
  Name: string;
  Driver?: string;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  ConfigOnly?: boolean;
  ConfigFrom?: { Network?: string } | null;
  EnableIPv4?: boolean;
  EnableIPv6?: boolean;
  Scope?: string;
  IPAM?: { Driver?: string; Options?: Record<string, string> | null; Config?: IpamConfigEntry[] | null } | null;
}

function newId(): string {
  return randomBytes(32).toString('hex');
}

function isRunning(c: ContainerRecord): boolean {
  return c.State.Status === 'running' || c.State.Status === 'paused';
}

/** Docker derives the MAC from the IPv4 address: 02:42 and the address's four bytes. */
export function macFromIpv4(ip: string): string {
  const a = parseIp(ip);
  if (!a || a.family !== 4) return randomMac();
  const bytes = [0x02, 0x42, ...[24n, 16n, 8n, 0n].map((s) => Number((a.value >> s) & 0xffn))];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const MAC_RE = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;

/** Docker's `until` filter: a Go duration (`24h`, `10m30s`) before now, a timestamp, or unix seconds. */
export function parseUntil(v: string, now = Date.now()): number {
  const ago = goDurationMs(v);
  if (ago !== undefined) return now - ago;
  if (/^[0-9]+(\.[0-9]+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidParameter(`failed to parse value as time or duration: "${v}"`);
  return t;
}

/**
 * Networks and endpoints: the state in SQLite, IPAM, gateway choice, /etc/hosts, and the calls
 * into drivers, the firewall and the DNS server. Implements {@link NetworkAttacher} for the
 * container manager: `attach` at start joins every network the container is configured on,
 * `detach` at exit leaves them (the configuration stays).
 */
export class NetworkManager implements NetworkAttacher, PolicyNetworks {
  private readonly nets = new Map<string, NetworkRecord>();
  private readonly locks = new KeyedLock();
  private firewallChain: Promise<void> = Promise.resolve();
  /** The firewall state last applied, as JSON. */
  private lastFirewall?: string;
  /** Each running container's current 127.0.0.11 redirect (`address:port>source`), to skip no-op re-applies. */
  private readonly redirects = new Map<string, string>();
  /** Running containers served at 127.0.0.11 with no user-defined network left (see {@link DnsSnapshot.forwardOnly}). */
  private readonly keptResolvers = new Set<string>();

  constructor(
    private readonly db: Database.Database,
    private readonly ipam: Ipam,
    private readonly drivers: DriverRegistry,
    private readonly containers: ContainerDirectory,
    private firewall: Firewall,
    private dns: DnsService,
    private readonly stateDir: string,
    private readonly ports: PortAllocator,
  ) {
    for (const row of db.prepare('SELECT doc FROM networks').all() as { doc: string }[]) {
      const n = JSON.parse(row.doc) as NetworkRecord;
      this.nets.set(n.Id, n);
    }
    dns.setEgressLearner?.(this.egressLearn);
  }

  /**
   * DNS answers for deny networks' names and policies' `dns` peers go to whichever firewall is in
   * place, and to the drivers enforcing policies themselves.
   */
  private readonly egressLearn = async (items: EgressLearnt[]): Promise<void> => {
    await Promise.all([isEgressLearner(this.firewall) ? this.firewall.learnEgress(items) : undefined, this.policies?.learnDns(items)]);
  };

  /** `arca network egress NAME`. */
  async egress(ref: string): Promise<EgressView> {
    const n = this.find(ref);
    if (!n) throw new NotFound(`network ${ref} not found`);
    return describeEgress(n, this.firewall);
  }

  /** Where `docker events` learns of network create/destroy/connect/disconnect; the daemon wires its bus. */
  events: EventSink = NO_EVENTS;

  /** Network policies, compiled on every publish (the daemon wires them; none: nothing is governed). */
  policies?: PolicyEnforcement;

  /** Swaps in the real firewall or DNS server when their libraries land. */
  setFirewall(f: Firewall): void {
    this.firewall = f;
  }
  setDns(d: DnsService): void {
    this.dns = d;
    d.setEgressLearner?.(this.egressLearn);
  }

  // ---- start-up -------------------------------------------------------------------------------------

  /**
   * First half of start-up, before containers are recovered: predefined networks exist, helper
   * stacks run, every network's kernel objects are (re)made by the normal create path.
   */
  async start(): Promise<void> {
    // Host sysctls (ip_forward, IPv6 forwarding, route_localnet on bridges) are written by the
    // firewall with each apply, from the same state: nothing here touches /proc/sys.
    const routes: Prefix[] = [];
    for (const name of PREDEFINED) if (!this.byName(name)) this.insertPredefined(name, routes);
    for (const d of this.drivers.all()) {
      if (isSupervised(d)) {
        await d.start({
          stateDir: join(this.stateDir, d.name),
          onFailure: (e) => log.error('driver helper failed', { driver: d.name, error: e.message }),
          addresses: this.driverAddresses,
        });
      }
    }
    for (const n of this.nets.values()) {
      if (n.ConfigOnly) continue;
      await this.driverOf(n)
        .createNetwork(this.driverNetwork(n))
        .catch((e: unknown) => log.error('recreating network failed', { network: n.Name, error: errorMessage(e) }));
    }
  }

  /**
   * Second half, after containers were recovered: endpoints of running containers are re-applied
   * (made anew when the kernel lost them), endpoints of anything else are dropped, and each driver
   * removes kernel objects the database does not know.
   */
  async reconcile(): Promise<void> {
    for (const ep of this.allEndpoints()) {
      const c = this.containers.find(ep.containerId);
      const n = this.nets.get(ep.networkId);
      await this.locked(ep.containerId, async () => {
        if (!n) return this.dropEndpointRow(ep.id);
        const sb = c ? this.sandboxOf(c) : undefined;
        if (!c || !isRunning(c) || !sb) {
          await this.leaveEndpoint(n, ep, sb).catch(() => {});
          return;
        }
        const d = this.driverOf(n);
        const dn = this.driverNetwork(n);
        const de = this.driverEndpoint(ep, n);
        if (ep.published?.length) {
          await this.ports.reserveAll(ep.published).catch((e: unknown) =>
            log.error('published ports not re-reserved', { container: ep.containerId.slice(0, 12), error: errorMessage(e) }),
          );
        }
        try {
          if (isReapplier(d)) await d.reapply(dn, de, sb);
          else await d.join(dn, de, sb);
        } catch (e) {
          log.error('re-applying endpoint failed', { container: ep.containerId.slice(0, 12), network: n.Name, error: errorMessage(e) });
        }
      });
    }
    for (const id of new Set(this.allEndpoints().map((e) => e.containerId))) {
      const c = this.containers.find(id);
      const sb = c && isRunning(c) ? this.sandboxOf(c) : undefined;
      if (c && sb) {
        this.redirects.delete(id);
        await this.locked(id, () => this.refreshDnsRedirect(c, sb, false, true)).catch((e: unknown) =>
          log.warn('DNS redirect not restored', { id: id.slice(0, 12), error: errorMessage(e) }),
        );
      }
    }
    const known = {
      networks: [...this.nets.values()].map((n) => this.driverNetwork(n)),
      endpoints: this.allEndpoints().flatMap((e) => {
        const n = this.nets.get(e.networkId);
        return n ? [this.driverEndpoint(e, n)] : [];
      }),
    };
    for (const d of this.drivers.all()) {
      if (isKernelSweeper(d)) await d.sweep(known).catch((e: unknown) => log.warn('sweep failed', { driver: d.name, error: errorMessage(e) }));
    }
    await this.publish(true);
  }

  async stop(): Promise<void> {
    await this.dns.close?.().catch(() => {});
    for (const d of this.drivers.all()) if (isSupervised(d)) await d.stop().catch(() => {});
  }

  private insertPredefined(name: (typeof PREDEFINED)[number], routes: Prefix[]): void {
    const driver = name === 'bridge' ? 'bridge' : name === 'host' ? 'host' : 'null';
    const id = newId();
    const pools =
      name === 'bridge'
        ? this.ipam.choosePools({ config: [], ipv4: true, ipv6: false, taken: this.takenSubnets(), hostRoutes: routes, defaultV4: DEFAULT_BRIDGE_SUBNET })
        : [];
    const n: NetworkRecord = {
      Name: name,
      Id: id,
      Created: new Date().toISOString(),
      Scope: 'local',
      Driver: driver,
      EnableIPv4: name === 'bridge',
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: pools.map((p) => ({ Subnet: p.subnet, Gateway: p.gateway })) },
      Internal: false,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Options:
        name === 'bridge'
          ? {
              'com.docker.network.bridge.default_bridge': 'true',
              'com.docker.network.bridge.enable_icc': 'true',
              'com.docker.network.bridge.enable_ip_masquerade': 'true',
              'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
              [OPT_BRIDGE_NAME]: DEFAULT_BRIDGE_NAME,
              'com.docker.network.driver.mtu': '1500',
            }
          : {},
      Labels: {},
      pools,
      predefined: true,
    };
    this.db.transaction(() => {
      this.saveNetwork(n);
      this.ipam.reservePools(id, pools);
    })();
  }

  // ---- lookups ----------------------------------------------------------------------------------------

  private byName(name: string): NetworkRecord | undefined {
    for (const n of this.nets.values()) if (n.Name === name) return n;
    return undefined;
  }

  /** By full id, then exact name, then unique id prefix (Docker's order). */
  find(ref: string): NetworkRecord | undefined {
    const direct = this.nets.get(ref);
    if (direct) return direct;
    const named = this.byName(ref);
    if (named) return named;
    if (/^[0-9a-f]+$/.test(ref)) {
      const hits = [...this.nets.values()].filter((n) => n.Id.startsWith(ref));
      if (hits.length === 1) return hits[0];
      if (hits.length > 1) throw new InvalidParameter(`network ${ref} is ambiguous (${hits.length} matches found based on ID prefix)`);
    }
    return undefined;
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw new NotFound(`network ${ref} not found`);
    return n;
  }

  all(): NetworkRecord[] {
    return [...this.nets.values()].sort((a, b) => a.Created.localeCompare(b.Created) || a.Name.localeCompare(b.Name));
  }

  private driverOf(n: NetworkRecord): NetworkDriver {
    return this.drivers.get(n.Driver);
  }

  private takenSubnets(): Prefix[] {
    return [...this.nets.values()].flatMap((n) => n.pools.map((p) => Prefix.parse(p.subnet)!));
  }

  driverNetwork(n: NetworkRecord): DriverNetwork {
    return {
      id: n.Id,
      name: n.Name,
      options: n.Options,
      internal: n.Internal,
      enableIPv4: n.EnableIPv4,
      enableIPv6: n.EnableIPv6,
      subnets: n.pools.map((p) => ({ subnet: p.subnet, gateway: p.gateway })),
      predefined: n.predefined,
    };
  }

  private driverEndpoint(ep: EndpointRecord, n: NetworkRecord): DriverEndpoint {
    const att = this.attachment(ep.containerId, ep.networkId);
    return {
      id: ep.id,
      networkId: ep.networkId,
      containerId: ep.containerId,
      ifname: ep.ifname,
      mac: ep.mac,
      addresses: [ep.ipv4 ? `${ep.ipv4}/${ep.ipv4Prefix}` : '', ep.ipv6 ? `${ep.ipv6}/${ep.ipv6Prefix}` : ''].filter(Boolean),
      gateways: ep.activeGateways,
      options: att?.config.DriverOpts ?? {},
      dnsNames: n.predefined ? [] : ep.dnsNames,
      aliases: ep.aliases,
      exposed: this.exposedOf(ep.containerId),
    };
  }

  /** TCP and UDP ports a container exposes (what a load-balancing driver health-checks). */
  private exposedOf(containerId: string): DriverEndpoint['exposed'] {
    const c = this.containers.find(containerId);
    if (!c) return [];
    try {
      return exposedPorts(portConfig(c)).flatMap((k) => (k.proto === 'tcp' || k.proto === 'udp' ? [{ proto: k.proto, port: k.port }] : []));
    } catch {
      return [];
    }
  }

  private sandboxOf(c: ContainerRecord): Sandbox | undefined {
    const path = this.containers.sandboxKey(c);
    if (!path || !existsSync(path)) return undefined;
    return { containerId: c.Id, netnsPath: path, netnsName: basename(path) };
  }

  // ---- persistence ------------------------------------------------------------------------------------

  private saveNetwork(n: NetworkRecord): void {
    this.db.prepare('INSERT INTO networks(id, name, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc').run(n.Id, n.Name, JSON.stringify(n));
    this.nets.set(n.Id, n);
  }

  private allEndpoints(): EndpointRecord[] {
    return (this.db.prepare('SELECT doc FROM net_endpoints').all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as EndpointRecord);
  }

  private endpointsOf(containerId: string): EndpointRecord[] {
    return (this.db.prepare('SELECT doc FROM net_endpoints WHERE container_id = ?').all(containerId) as { doc: string }[]).map((r) => JSON.parse(r.doc) as EndpointRecord);
  }

  private endpointsOn(networkId: string): EndpointRecord[] {
    return (this.db.prepare('SELECT doc FROM net_endpoints WHERE network_id = ?').all(networkId) as { doc: string }[]).map((r) => JSON.parse(r.doc) as EndpointRecord);
  }

  private saveEndpoint(ep: EndpointRecord): void {
    this.db.prepare('INSERT INTO net_endpoints(id, network_id, container_id, doc) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc').run(ep.id, ep.networkId, ep.containerId, JSON.stringify(ep));
  }

  private dropEndpointRow(id: string): void {
    // The trigger on net_endpoints frees the endpoint's addresses in the same statement.
    this.db.prepare('DELETE FROM net_endpoints WHERE id = ?').run(id);
  }

  private attachments(containerId: string): Attachment[] {
    return (this.db.prepare('SELECT doc FROM net_attachments WHERE container_id = ? ORDER BY seq').all(containerId) as { doc: string }[]).map((r) => JSON.parse(r.doc) as Attachment);
  }

  private attachment(containerId: string, networkId: string): Attachment | undefined {
    const row = this.db.prepare('SELECT doc FROM net_attachments WHERE container_id = ? AND network_id = ?').get(containerId, networkId) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as Attachment) : undefined;
  }

  private addAttachment(c: ContainerRecord, n: NetworkRecord, config: EndpointRequest): void {
    const seq = ((this.db.prepare('SELECT MAX(seq) AS m FROM net_attachments WHERE container_id = ?').get(c.Id) as { m: number | null }).m ?? -1) + 1;
    const a: Attachment = { containerId: c.Id, networkId: n.Id, networkName: n.Name, seq, config };
    this.db.prepare('INSERT INTO net_attachments(container_id, network_id, seq, doc) VALUES (?, ?, ?, ?)').run(c.Id, n.Id, seq, JSON.stringify(a));
  }

  /** The networks a container was created with, in order: NetworkMode first, then EndpointsConfig. */
  private requestedNetworks(c: ContainerRecord): Array<{ ref: string; config: EndpointRequest }> {
    const mode = c.HostConfig.NetworkMode === 'default' || !c.HostConfig.NetworkMode ? 'bridge' : c.HostConfig.NetworkMode;
    if (mode.startsWith('container:')) return [];
    // The CLI says `default` for "whatever the daemon's default is": the predefined bridge.
    const eps = Object.fromEntries(
      Object.entries((c.NetworkingConfig.EndpointsConfig ?? {}) as Record<string, EndpointRequest | null>).map(([k, v]) => [k === 'default' ? 'bridge' : k, v]),
    );
    const out: Array<{ ref: string; config: EndpointRequest }> = [];
    const modeNet = this.find(mode);
    const sameAsMode = (k: string): boolean => k === mode || (modeNet !== undefined && this.find(k)?.Id === modeNet.Id);
    const modeKey = Object.keys(eps).find(sameAsMode);
    out.push({ ref: mode, config: (modeKey ? eps[modeKey] : undefined) ?? {} });
    for (const [k, v] of Object.entries(eps)) if (!sameAsMode(k)) out.push({ ref: k, config: v ?? {} });
    return out;
  }

  /** Copies the create-time networks into net_attachments once; afterwards connect/disconnect edit them. */
  private seed(c: ContainerRecord): void {
    this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM net_seeded WHERE container_id = ?').get(c.Id)) return;
      if (!this.db.prepare('SELECT 1 FROM containers WHERE id = ?').get(c.Id)) return;
      for (const r of this.requestedNetworks(c)) {
        const n = this.get(r.ref);
        if (!this.attachment(c.Id, n.Id)) this.addAttachment(c, n, r.config);
      }
      this.db.prepare('INSERT INTO net_seeded(container_id) VALUES (?)').run(c.Id);
    })();
  }

  /** Attachments of a container, seeded from its create request when needed. */
  private attachmentsFor(c: ContainerRecord): Attachment[] {
    this.seed(c);
    const rows = this.attachments(c.Id);
    if (rows.length || this.db.prepare('SELECT 1 FROM net_seeded WHERE container_id = ?').get(c.Id)) return rows;
    // Not saved yet (inspect during create): show what was asked for.
    return this.requestedNetworks(c).flatMap((r, i) => {
      const n = this.find(r.ref);
      return n ? [{ containerId: c.Id, networkId: n.Id, networkName: n.Name, seq: i, config: r.config }] : [];
    });
  }

  private locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(key, fn);
  }


  // ---- networks ---------------------------------------------------------------------------------------

  async create(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    const name = req.Name ?? '';
    if (!name) throw new InvalidParameter('network name must not be empty');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new InvalidParameter(`invalid network name "${name}"`);
    if (this.byName(name)) throw new Conflict(`network with name ${name} already exists`);
    const driver = this.drivers.get(req.Driver ?? '');
    if (!driver.usesIpam) throw new Forbidden(`only one instance of "${driver.name}" network is allowed`);
    const ipamDriver = req.IPAM?.Driver || 'default';
    if (ipamDriver !== this.ipam.name) throw new NotFound(`plugin "${ipamDriver}" not found`);
    if (req.Scope && req.Scope !== 'local') throw new InvalidParameter(`unknown scope "${req.Scope}"`);
    const enableIPv6 = req.EnableIPv6 ?? false;
    const enableIPv4 = req.EnableIPv4 ?? true;
    if (!enableIPv4 && !enableIPv6) throw new InvalidParameter('IPv4 or IPv6 must be enabled');
    const config = req.IPAM?.Config ?? [];
    this.ipam.validate(config, enableIPv6);
    const options = { ...(req.Options ?? {}) };
    const draft: DriverNetwork = {
      id: newId(),
      name,
      options,
      internal: req.Internal ?? false,
      enableIPv4,
      enableIPv6,
      // The subnets asked for (IPAM chooses the rest later): a driver may refuse some before anything exists.
      subnets: config.flatMap((c) => (c.Subnet ? [{ subnet: c.Subnet, gateway: c.Gateway ?? '' }] : [])),
      predefined: false,
    };
    // Generic options (every driver), checked before the driver's own and before anything exists.
    parseEgressOptions(options);
    driver.validateNetwork(draft);
    const bridgeName = options[OPT_BRIDGE_NAME];
    if (bridgeName && [...this.nets.values()].some((n) => n.Options[OPT_BRIDGE_NAME] === bridgeName)) {
      throw new Forbidden(`bridge name ${bridgeName} is already in use by another network`);
    }
    const routes = await this.ipam.hostRoutes();
    // Choose pools and insert the row in one synchronous transaction: no other create can interleave.
    const n = this.db.transaction((): NetworkRecord => {
      if (this.byName(name)) throw new Conflict(`network with name ${name} already exists`);
      const pools = this.ipam.choosePools({ config, ipv4: enableIPv4, ipv6: enableIPv6, taken: this.takenSubnets(), hostRoutes: routes });
      const rec: NetworkRecord = {
        Name: name,
        Id: draft.id,
        Created: new Date().toISOString(),
        Scope: 'local',
        Driver: driver.name,
        EnableIPv4: enableIPv4,
        EnableIPv6: enableIPv6,
        IPAM: {
          Driver: 'default',
          Options: req.IPAM?.Options ?? {},
          Config: pools.map((p) => ({
            Subnet: p.subnet,
            ...(p.userRange ? { IPRange: p.range } : {}),
            Gateway: p.gateway,
            ...(Object.keys(p.aux).length ? { AuxiliaryAddresses: p.aux } : {}),
          })),
        },
        Internal: req.Internal ?? false,
        Attachable: req.Attachable ?? false,
        Ingress: req.Ingress ?? false,
        ConfigFrom: { Network: req.ConfigFrom?.Network ?? '' },
        ConfigOnly: req.ConfigOnly ?? false,
        Options: options,
        Labels: { ...(req.Labels ?? {}) },
        pools,
        predefined: false,
      };
      this.saveNetwork(rec);
      this.ipam.reservePools(rec.Id, pools);
      return rec;
    })();
    try {
      if (!n.ConfigOnly) await driver.createNetwork(this.driverNetwork(n));
    } catch (e) {
      await driver.deleteNetwork(this.driverNetwork(n)).catch(() => {});
      this.forgetNetwork(n.Id);
      throw e;
    }
    await this.publish();
    this.events.emit('network', 'create', n.Id, { name, type: n.Driver });
    log.info('network created', { name, id: n.Id.slice(0, 12), subnets: n.pools.map((p) => p.subnet) });
    return { Id: n.Id, Warning: '' };
  }

  private forgetNetwork(id: string): void {
    this.db.transaction(() => {
      this.ipam.releaseNetwork(id);
      this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
    })();
    this.nets.delete(id);
  }

  async remove(ref: string): Promise<void> {
    const n = this.get(ref);
    if (n.predefined) throw new Forbidden(`${n.Name} is a pre-defined network and cannot be removed`);
    await this.locked(`net:${n.Id}`, async () => {
      const active = this.endpointsOn(n.Id);
      if (active.length) {
        throw new Forbidden(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
      }
      if (!n.ConfigOnly) await this.driverOf(n).deleteNetwork(this.driverNetwork(n));
      this.forgetNetwork(n.Id);
    });
    await this.publish();
    this.events.emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
    log.info('network removed', { name: n.Name, id: n.Id.slice(0, 12) });
  }

  /** `GET /networks` filters. */
  list(filters: Map<string, string[]>): NetworkRecord[] {
    const allowed = new Set(['name', 'id', 'label', 'driver', 'type', 'dangling', 'scope']);
    for (const k of filters.keys()) if (!allowed.has(k)) throw new InvalidParameter(`invalid filter '${k}'`);
    for (const t of filters.get('type') ?? []) if (t !== 'custom' && t !== 'builtin') throw new InvalidParameter(`invalid filter: 'type'='${t}'`);
    const dangling = filters.get('dangling');
    for (const v of dangling ?? []) if (!/^(true|false|1|0)$/i.test(v)) throw new InvalidParameter(`invalid filter 'dangling=${v}'`);
    return this.all().filter((n) => {
      const names = filters.get('name');
      if (names && !names.some((x) => n.Name.includes(x))) return false;
      const ids = filters.get('id');
      if (ids && !ids.some((x) => n.Id.includes(x))) return false;
      const drivers = filters.get('driver');
      if (drivers && !drivers.includes(n.Driver)) return false;
      const scopes = filters.get('scope');
      if (scopes && !scopes.includes('local')) return false;
      const types = filters.get('type');
      if (types && !types.includes(n.predefined ? 'builtin' : 'custom')) return false;
      if (!matchLabels(n.Labels, filters.get('label'))) return false;
      if (dangling && dangling.length) {
        const want = /^(true|1)$/i.test(dangling[0]!);
        const isDangling = !n.predefined && this.endpointsOn(n.Id).length === 0;
        if (want !== isDangling) return false;
      }
      return true;
    });
  }

  /** The inspect document; with `withContainers`, the active endpoints (`Containers`). */
  view(n: NetworkRecord, withContainers: boolean): Record<string, unknown> {
    const containers: Record<string, unknown> = {};
    if (withContainers) {
      for (const ep of this.endpointsOn(n.Id)) {
        const c = this.containers.find(ep.containerId);
        containers[ep.containerId] = {
          Name: c?.Name ?? '',
          EndpointID: ep.id,
          MacAddress: ep.mac,
          IPv4Address: ep.ipv4 ? `${ep.ipv4}/${ep.ipv4Prefix}` : '',
          IPv6Address: ep.ipv6 ? `${ep.ipv6}/${ep.ipv6Prefix}` : '',
        };
      }
    }
    return networkView(n, containers);
  }

  /**
   * `inspect -v`: the view plus what the driver reports live per endpoint (wireguard: its peers'
   * handshakes and bytes), as `DriverStatus` in each container's entry.
   */
  async verboseView(n: NetworkRecord): Promise<Record<string, unknown>> {
    const v = this.view(n, true);
    const d = this.driverOf(n);
    if (!isEndpointStatusReporter(d)) return v;
    const status = await d.endpointStatus(this.driverNetwork(n));
    const containers = v['Containers'] as Record<string, Record<string, unknown>>;
    for (const ep of this.endpointsOn(n.Id)) {
      const entry = containers[ep.containerId];
      const st = status[ep.id];
      if (entry && st) entry['DriverStatus'] = st;
    }
    return v;
  }

  async prune(filters: Map<string, string[]>): Promise<{ NetworksDeleted: string[] }> {
    for (const k of filters.keys()) if (k !== 'until' && k !== 'label' && k !== 'label!') throw new InvalidParameter(`invalid filter '${k}'`);
    const untils = (filters.get('until') ?? []).map((u) => parseUntil(u));
    const deleted: string[] = [];
    for (const n of this.all()) {
      if (n.predefined) continue;
      if (untils.length && !untils.every((u) => Date.parse(n.Created) < u)) continue;
      if (!matchLabels(n.Labels, filters.get('label'))) continue;
      const neg = filters.get('label!');
      if (neg && neg.length && matchLabels(n.Labels, neg, true)) continue;
      if (this.endpointsOn(n.Id).length) continue;
      try {
        await this.remove(n.Id);
        deleted.push(n.Name);
      } catch (e) {
        log.warn('prune: network not removed', { network: n.Name, error: errorMessage(e) });
      }
    }
    this.events.emit('network', 'prune', '', { reclaimed: '0' });
    return { NetworksDeleted: deleted };
  }

  // ---- endpoint checks --------------------------------------------------------------------------------

  /** Checks one requested endpoint against its network (static addresses, MAC, aliases). */
  private checkEndpoint(n: NetworkRecord, cfg: EndpointRequest): void {
    if (n.ConfigOnly) throw new Forbidden(`network ${n.Name} is a config-only network; containers cannot attach to it`);
    const wrap = (msg: string): InvalidParameter => new InvalidParameter(`invalid config for network ${n.Name}: invalid endpoint settings:\n${msg}`);
    const ipam = cfg.IPAMConfig ?? {};
    for (const [text, fam] of [
      [ipam.IPv4Address, 4],
      [ipam.IPv6Address, 6],
    ] as const) {
      if (!text) continue;
      const a = parseIp(text);
      if (!a || a.family !== fam) throw wrap(`invalid IPv${fam} address: ${text}`);
      if (!this.driverOf(n).usesIpam || n.predefined) throw wrap('user specified IP address is supported on user defined networks only');
      const pools = n.pools.filter((p) => p.family === fam);
      if (!pools.some((p) => p.userConfigured)) throw wrap('user specified IP address is supported only when connecting to networks with user configured subnets');
      if (!pools.some((p) => p.userConfigured && Prefix.parse(p.subnet)!.contains(a))) throw wrap(`no configured subnet or ip-range contain the IP address ${text}`);
    }
    if (cfg.MacAddress && !MAC_RE.test(cfg.MacAddress)) throw wrap(`invalid MAC address: ${cfg.MacAddress}`);
    if (cfg.Aliases?.length && (n.predefined || !this.driverOf(n).usesIpam)) {
      throw new InvalidParameter('network-scoped aliases are only supported for user-defined networks');
    }
    if (cfg.GwPriority !== undefined && !Number.isInteger(cfg.GwPriority)) throw wrap(`invalid GwPriority: ${cfg.GwPriority}`);
  }

  /** host / none / container: modes exclude other networks (Docker's texts). */
  private checkModeMix(names: NetworkRecord[]): void {
    if (names.length < 2) return;
    if (names.some((n) => n.Driver === 'host')) throw new InvalidParameter('container cannot be disconnected from host network or connected to host network');
    if (names.some((n) => n.Driver === 'null')) throw new InvalidParameter('container cannot be connected to multiple networks with one of the networks in private (none) mode');
  }

  // ---- NetworkAttacher --------------------------------------------------------------------------------

  validate(c: ContainerRecord): void {
    portRequests(portConfig(c));
    const reqs = this.requestedNetworks(c);
    const nets = reqs.map((r) => this.get(r.ref));
    this.checkModeMix(nets);
    reqs.forEach((r, i) => this.checkEndpoint(nets[i]!, r.config));
    for (const l of c.HostConfig.Links ?? []) {
      const target = parseLink(l).name;
      if (!this.containers.find(target)) throw new NotFound(`could not get container for ${target}`);
    }
  }

  attach(c: ContainerRecord, netnsPath: string | undefined): Promise<void> {
    return this.locked(c.Id, async () => {
      if (!netnsPath) return;
      const sb: Sandbox = { containerId: c.Id, netnsPath, netnsName: basename(netnsPath) };
      this.redirects.delete(c.Id);
      this.keptResolvers.delete(c.Id);
      await this.dns.stopServing?.(c.Id);
      // Leftovers of an earlier run (a crash between start and exit) go first.
      for (const ep of this.endpointsOf(c.Id)) await this.leaveEndpoint(this.nets.get(ep.networkId), ep, undefined).catch(() => {});
      const atts = this.attachmentsFor(c);
      const nets = atts.map((a) => {
        const n = this.nets.get(a.networkId);
        if (!n) throw new NotFound(`network ${a.networkName} not found`);
        return n;
      });
      const made: EndpointRecord[] = [];
      try {
        let index = 0;
        for (let i = 0; i < atts.length; i++) {
          const n = nets[i]!;
          const ifname = this.driverOf(n).usesIpam ? `eth${index++}` : '';
          made.push(this.allocateEndpoint(c, n, atts[i]!.config, ifname));
        }
        this.chooseGateways(made);
        for (const ep of made) this.saveEndpoint(ep);
        for (const ep of made) {
          const n = this.nets.get(ep.networkId)!;
          const d = this.driverOf(n);
          const de = this.driverEndpoint(ep, n);
          await d.createEndpoint(this.driverNetwork(n), de);
          await d.join(this.driverNetwork(n), de, sb);
        }
        await this.publishPorts(c, made);
        await this.refreshDnsRedirect(c, sb, false);
        for (const ep of made) this.endpointEvent('connect', c, this.nets.get(ep.networkId)!);
      } catch (e) {
        for (const ep of made.reverse()) await this.leaveEndpoint(this.nets.get(ep.networkId), ep, sb).catch(() => {});
        throw e;
      }
    }).then(() => this.publish(false, c.Id).catch((e: unknown) => this.detach(c, { closing: true }).finally(() => Promise.reject(e))));
  }

  detach(c: ContainerRecord, opts: { closing?: boolean } = {}): Promise<void> {
    return this.locked(c.Id, async () => {
      const errors: unknown[] = [];
      const own = this.sandboxOf(c);
      const sb = own && opts.closing ? { ...own, closing: true } : own;
      for (const ep of this.endpointsOf(c.Id)) {
        await this.leaveEndpoint(this.nets.get(ep.networkId), ep, sb).catch((e: unknown) => errors.push(e));
        const n = this.nets.get(ep.networkId);
        if (n) this.endpointEvent('disconnect', c, n);
      }
      this.redirects.delete(c.Id);
      this.keptResolvers.delete(c.Id);
      await this.dns.stopServing?.(c.Id).catch((e: unknown) => errors.push(e));
      if (errors.length) throw new AggregateError(errors, `leaving the networks of ${c.Id.slice(0, 12)} failed in part`);
    }).finally(() => this.publish());
  }

  private endpointEvent(action: 'connect' | 'disconnect', c: ContainerRecord, n: NetworkRecord): void {
    this.events.emit('network', action, n.Id, { container: c.Id, name: n.Name, type: n.Driver });
  }

  /** Leaves and deletes one endpoint; the row (and its addresses) goes even if the kernel part fails. */
  private async leaveEndpoint(n: NetworkRecord | undefined, ep: EndpointRecord, sb: Sandbox | undefined): Promise<void> {
    const errors: unknown[] = [];
    if (n) {
      const d = this.driverOf(n);
      const dn = this.driverNetwork(n);
      const de = this.driverEndpoint(ep, n);
      if (sb) await d.leave(dn, de, sb).catch((e: unknown) => errors.push(e));
      await d.deleteEndpoint(dn, de, sb).catch((e: unknown) => errors.push(e));
    }
    if (ep.published?.length) this.ports.releaseAll(ep.published);
    this.dropEndpointRow(ep.id);
    // An endpoint rolled back before its row was saved still holds its addresses.
    this.ipam.releaseOwner(ep.networkId, ep.id);
    if (errors.length) throw new AggregateError(errors, `removing endpoint ${ep.id.slice(0, 12)} failed in part`);
  }

  /** Addresses, MAC and names for a new endpoint, reserved in the database (not yet saved as a row). */
  private allocateEndpoint(c: ContainerRecord, n: NetworkRecord, cfg: EndpointRequest, ifname: string): EndpointRecord {
    const id = newId();
    const ep: EndpointRecord = {
      id,
      networkId: n.Id,
      containerId: c.Id,
      ifname,
      mac: '',
      ipv4: '',
      ipv4Prefix: 0,
      ipv6: '',
      ipv6Prefix: 0,
      gateway4: '',
      gateway6: '',
      aliases: [...(cfg.Aliases ?? [])],
      dnsNames: [],
      gwPriority: cfg.GwPriority ?? 0,
      activeGateways: [],
    };
    if (!this.driverOf(n).usesIpam) return ep;
    this.db.transaction(() => {
      for (const fam of [4, 6] as const) {
        if (fam === 4 ? !n.EnableIPv4 : !n.EnableIPv6) continue;
        const wanted = fam === 4 ? cfg.IPAMConfig?.IPv4Address : cfg.IPAMConfig?.IPv6Address;
        const pools = n.pools.filter((p) => p.family === fam);
        const pool: IpamPool | undefined = wanted ? pools.find((p) => Prefix.parse(p.subnet)!.contains(parseIp(wanted)!)) : pools[0];
        if (!pool) continue;
        let addr: string;
        try {
          addr = this.ipam.requestAddress(n.Id, pool, id, wanted || undefined);
        } catch (e) {
          if (/no available/.test(errorMessage(e))) {
            throw Object.assign(e as Error, { message: `${errorMessage(e)}: ${n.Name} (${n.Id})` });
          }
          throw e;
        }
        const len = Prefix.parse(pool.subnet)!.bits;
        if (fam === 4) {
          ep.ipv4 = addr;
          ep.ipv4Prefix = len;
          ep.gateway4 = n.Internal ? '' : pool.gateway;
        } else {
          ep.ipv6 = addr;
          ep.ipv6Prefix = len;
          ep.gateway6 = n.Internal ? '' : pool.gateway;
        }
      }
    })();
    ep.mac = cfg.MacAddress ? cfg.MacAddress.toLowerCase().replace(/-/g, ':') : ep.ipv4 ? macFromIpv4(ep.ipv4) : randomMac();
    if (!n.predefined) {
      const names = [c.Name, ...ep.aliases, c.Id.slice(0, 12)];
      if (c.Config.Hostname && !names.includes(c.Config.Hostname)) names.push(c.Config.Hostname);
      ep.dnsNames = [...new Set(names.filter(Boolean))];
    }
    return ep;
  }

  /**
   * Reserves the container's published ports (`-p`, `-P`) on the endpoint that carries its IPv4
   * default route (Docker publishes through the gateway endpoint); `--internal` networks publish
   * nothing. All or nothing: a taken port fails the start with Docker's message.
   */
  private async publishPorts(c: ContainerRecord, eps: EndpointRecord[]): Promise<void> {
    const requests = portRequests(portConfig(c));
    if (!requests.length) return;
    const ep = this.portHolder(eps);
    if (!ep) return;
    const n = this.nets.get(ep.networkId)!;
    ep.published = await this.ports.allocateAll(requests, { hostBindingIpv4: n.Options[OPT_HOST_BINDING], ipv6: true });
    this.saveEndpoint(ep);
  }

  /** The endpoint that carries published ports: the IPv4 gateway endpoint, else the first routable one. */
  private portHolder(eps: EndpointRecord[]): EndpointRecord | undefined {
    const open = eps.filter((e) => e.ipv4 && !this.nets.get(e.networkId)?.Internal);
    return open.find((e) => e.activeGateways.length) ?? open[0];
  }

  /**
   * Published ports follow the gateway endpoint (as Docker 28 moves them when the default gateway
   * changes): the host ports stay held, only the endpoint they lead to changes. `extra`: ports of
   * an endpoint just removed, to hand over or release.
   */
  private movePorts(c: ContainerRecord, extra?: NonNullable<EndpointRecord['published']>): void {
    const eps = this.endpointsOf(c.Id);
    const holder = eps.find((e) => e.published?.length);
    const ports = extra?.length ? extra : holder?.published;
    if (!ports?.length) return;
    const to = this.portHolder(eps);
    if (!to) {
      if (extra?.length) this.ports.releaseAll(extra);
      return;
    }
    if (holder && holder.id === to.id) return;
    this.db.transaction(() => {
      if (holder && holder !== to) {
        holder.published = undefined;
        this.saveEndpoint(holder);
      }
      to.published = ports;
      this.saveEndpoint(to);
    })();
  }

  /**
   * Docker's default-gateway rule: per family, the endpoint with the highest GwPriority that has a
   * gateway wins, ties broken by network name. Sets `activeGateways`; returns the endpoints whose
   * routes changed.
   */
  private chooseGateways(eps: EndpointRecord[]): EndpointRecord[] {
    const before = new Map(eps.map((e) => [e.id, e.activeGateways.join(',')]));
    for (const e of eps) e.activeGateways = [];
    for (const fam of [4, 6] as const) {
      const gw = (e: EndpointRecord): string => (fam === 4 ? e.gateway4 : e.gateway6);
      const cands = eps.filter((e) => gw(e) && e.ifname);
      cands.sort((a, b) => b.gwPriority - a.gwPriority || (this.nets.get(a.networkId)?.Name ?? '').localeCompare(this.nets.get(b.networkId)?.Name ?? ''));
      const win = cands[0];
      if (win) win.activeGateways.push(gw(win));
    }
    return eps.filter((e) => before.get(e.id) !== e.activeGateways.join(','));
  }

  // ---- connect / disconnect ---------------------------------------------------------------------------

  async connect(netRef: string, containerRef: string, cfg: EndpointRequest): Promise<void> {
    const n = this.get(netRef);
    const c = this.containers.find(containerRef);
    if (!c) throw new NotFound(`No such container: ${containerRef}`);
    const mode = c.HostConfig.NetworkMode;
    if (mode.startsWith('container:')) throw new Forbidden('container sharing network namespace with another container or host cannot be connected to any other network');
    await this.locked(c.Id, async () => {
      const atts = this.attachmentsFor(c);
      if (atts.some((a) => a.networkId === n.Id)) throw new Forbidden(`endpoint with name ${c.Name} already exists in network ${n.Name}`);
      this.checkModeMix([...atts.map((a) => this.nets.get(a.networkId)).filter((x): x is NetworkRecord => !!x), n]);
      this.checkEndpoint(n, cfg);
      const d = this.driverOf(n);
      const sb = isRunning(c) ? this.sandboxOf(c) : undefined;
      if (!sb) {
        this.addAttachment(c, n, cfg);
        return;
      }
      if (!isLiveAttach(d)) throw new Forbidden(`network driver "${d.name}" cannot attach a running container; stop it first`);
      const current = this.endpointsOf(c.Id);
      const used = new Set(current.map((e) => e.ifname));
      let i = 0;
      while (used.has(`eth${i}`)) i++;
      const ep = this.allocateEndpoint(c, n, cfg, d.usesIpam ? `eth${i}` : '');
      const changed = this.chooseGateways([...current, ep]).filter((e) => e.id !== ep.id);
      try {
        this.db.transaction(() => {
          this.addAttachment(c, n, cfg);
          this.saveEndpoint(ep);
        })();
      } catch (e) {
        this.ipam.releaseOwner(n.Id, ep.id);
        throw e;
      }
      try {
        // The losing endpoint gives up its default route first, then the new one takes it.
        await this.applyGateways(changed, sb);
        const de = this.driverEndpoint(ep, n);
        await d.createEndpoint(this.driverNetwork(n), de);
        // The process runs already: its policies go in before its interface does.
        if (this.policies?.list().length) await this.publish();
        await d.join(this.driverNetwork(n), de, sb);
      } catch (e) {
        await this.leaveEndpoint(n, ep, sb).catch(() => {});
        this.db.prepare('DELETE FROM net_attachments WHERE container_id = ? AND network_id = ?').run(c.Id, n.Id);
        const rest = this.endpointsOf(c.Id);
        await this.applyGateways(this.chooseGateways(rest), sb).catch(() => {});
        throw e;
      }
      this.movePorts(c);
      await this.refreshDnsRedirect(c, sb, true);
      this.rewriteHosts(c);
      if (!n.predefined && d.usesIpam) this.useEmbeddedResolver(c);
      this.endpointEvent('connect', c, n);
    });
    await this.publish();
  }

  async disconnect(netRef: string, containerRef: string, force: boolean): Promise<void> {
    const c = this.containers.find(containerRef);
    if (!c) throw new NotFound(`No such container: ${containerRef}`);
    const n = this.find(netRef);
    await this.locked(c.Id, async () => {
      const atts = this.attachmentsFor(c);
      if (!n) {
        // A network removed while the container was stopped: `--force` drops the dangling entry.
        const dangling = atts.find((a) => a.networkName === netRef || a.networkId.startsWith(netRef));
        if (!dangling || !force) throw new NotFound(`network ${netRef} not found`);
        this.db.prepare('DELETE FROM net_attachments WHERE container_id = ? AND network_id = ?').run(c.Id, dangling.networkId);
        return;
      }
      const net = n;
      if (c.HostConfig.NetworkMode === 'host' && net.Driver === 'host') throw new Forbidden('container cannot be disconnected from host network or connected to host network');
      // Docker answers this with a plain error, hence 500 (and its wording differs for a stopped container).
      if (!atts.some((a) => a.networkId === net.Id)) {
        throw new SystemError(isRunning(c) ? `container ${c.Id} is not connected to network ${net.Name}` : `container ${c.Id} is not connected to the network ${net.Name}`);
      }
      const ep = this.endpointsOf(c.Id).find((e) => e.networkId === net.Id);
      const sb = this.sandboxOf(c);
      let orphanPorts: EndpointRecord['published'];
      if (ep) {
        if (sb && !isLiveAttach(this.driverOf(net))) throw new Forbidden(`network driver "${net.Driver}" cannot detach a running container; stop it first`);
        // Published ports move to the next gateway endpoint rather than being released.
        if (sb && ep.published?.length) {
          orphanPorts = ep.published;
          ep.published = undefined;
        }
        await this.leaveEndpoint(net, ep, sb).catch((e: unknown) => {
          if (force) return;
          if (orphanPorts?.length) this.ports.releaseAll(orphanPorts);
          throw e;
        });
      }
      this.db.prepare('DELETE FROM net_attachments WHERE container_id = ? AND network_id = ?').run(c.Id, net.Id);
      if (ep && sb) {
        const rest = this.endpointsOf(c.Id);
        await this.applyGateways(this.chooseGateways(rest), sb);
        this.movePorts(c, orphanPorts);
        await this.refreshDnsRedirect(c, sb, true);
        this.rewriteHosts(c);
        this.endpointEvent('disconnect', c, net);
      } else if (orphanPorts?.length) this.ports.releaseAll(orphanPorts);
    });
    await this.publish();
  }

  /** Saves changed gateway choices and moves the default routes inside the sandbox (losers first). */
  private async applyGateways(changed: EndpointRecord[], sb: Sandbox): Promise<void> {
    const ordered = [...changed].sort((a, b) => a.activeGateways.length - b.activeGateways.length);
    for (const ep of ordered) {
      if (!this.db.prepare('SELECT 1 FROM net_endpoints WHERE id = ?').get(ep.id)) continue;
      this.saveEndpoint(ep);
      const n = this.nets.get(ep.networkId);
      if (!n) continue;
      const d = this.driverOf(n);
      if (isGatewaySwitcher(d)) await d.setGateways(this.driverNetwork(n), this.driverEndpoint(ep, n), sb);
    }
  }

  /**
   * Gives a container on a user-defined network its resolver at 127.0.0.11:53: the DNS service's
   * own sockets in the container's namespace, or else (no native addon) a redirect to the DNS
   * listener of its first user-defined IPv4 network (by interface order). Either way the server
   * answers for all networks the container is on. `had`: the container may carry an old redirect
   * to remove when no user-defined network is left. `live`: its process already runs with the
   * resolv.conf it has; if that names 127.0.0.11, the resolver stays with no user-defined
   * network left, forwarding only (moby keeps a sandbox's resolver once started).
   */
  private async refreshDnsRedirect(c: ContainerRecord, sb: Sandbox, had: boolean, live = had): Promise<void> {
    if (this.dns.serveIn) {
      const userDefined = this.endpointsOf(c.Id).some((ep) => {
        const n = this.nets.get(ep.networkId);
        return n !== undefined && !n.predefined && this.driverOf(n).usesIpam;
      });
      const keep = !userDefined && live && this.readsEmbeddedResolver(c);
      if (keep) this.keptResolvers.add(c.Id);
      else this.keptResolvers.delete(c.Id);
      if (!userDefined && !keep) {
        await this.dns.stopServing?.(c.Id);
      } else {
        await this.dns.update(this.dnsSnapshot());
        if (await this.dns.serveIn(c.Id, sb.netnsPath)) return;
      }
    }
    if (!this.dns.listenerFor) return;
    const eps = this.endpointsOf(c.Id).sort((a, b) => a.ifname.localeCompare(b.ifname, 'en', { numeric: true }));
    for (const ep of eps) {
      const n = this.nets.get(ep.networkId);
      if (!n || n.predefined || !this.driverOf(n).usesIpam || !ep.ipv4) continue;
      const gw = n.pools.find((p) => p.family === 4)?.gateway;
      if (!gw) continue;
      // Only a container that gets a listener needs the snapshot now (a new listener starts from it).
      await this.dns.update(this.dnsSnapshot());
      const listener = await this.dns.listenerFor(n.Id, gw);
      if (!listener) return;
      const key = `${sb.netnsPath}|${listener.address}:${listener.port}>${ep.ipv4}`;
      if (this.redirects.get(c.Id) === key) return;
      this.redirects.delete(c.Id);
      await applyDnsRedirect(sb.netnsPath, { address: listener.address, port: listener.port, source: ep.ipv4 });
      this.redirects.set(c.Id, key);
      return;
    }
    if (had && this.redirects.has(c.Id)) await applyDnsRedirect(sb.netnsPath, undefined);
    this.redirects.delete(c.Id);
  }

  /** Whether the container's resolv.conf (as its process reads it now) names the embedded resolver. */
  private readsEmbeddedResolver(c: ContainerRecord): boolean {
    try {
      return usesEmbeddedResolver(readFileSync(join(this.containers.dir(c.Id), 'resolv.conf'), 'utf8'));
    } catch {
      return false;
    }
  }

  /**
   * Points a running container's resolv.conf at 127.0.0.11 (in place: it is bind-mounted), as
   * moby does when a container started on the default bridge joins a user-defined network.
   */
  private useEmbeddedResolver(c: ContainerRecord): void {
    const path = join(this.containers.dir(c.Id), 'resolv.conf');
    try {
      const text = readFileSync(path, 'utf8');
      if (!usesEmbeddedResolver(text)) writeFileSync(path, forEmbeddedResolver(text));
    } catch (e) {
      log.warn('rewriting /etc/resolv.conf failed', { id: c.Id.slice(0, 12), error: errorMessage(e) });
    }
  }

  /** Rewrites the running container's /etc/hosts in place (same inode: it is bind-mounted). */
  private rewriteHosts(c: ContainerRecord): void {
    const path = join(this.containers.dir(c.Id), 'hosts');
    if (!existsSync(path)) return;
    try {
      writeFileSync(path, renderHosts(this.hostsEntries(c), this.extraHosts(c)));
    } catch (e) {
      log.warn('rewriting /etc/hosts failed', { id: c.Id.slice(0, 12), error: errorMessage(e) });
    }
  }

  // ---- what containers see ----------------------------------------------------------------------------

  hostsEntries(c: ContainerRecord): string[] {
    const lines: string[] = [];
    const eps = this.endpointsOf(c.Id);
    // `--link` aliases, on the default bridge only (Docker's legacy links).
    const bridge = this.byName('bridge');
    if (bridge && eps.some((e) => e.networkId === bridge.Id)) {
      for (const l of c.HostConfig.Links ?? []) {
        const { name, alias } = parseLink(l);
        const other = this.containers.find(name);
        if (!other) continue;
        const oep = this.endpointsOf(other.Id).find((e) => e.networkId === bridge.Id);
        if (!oep?.ipv4) continue;
        const names = [...new Set([alias, other.Config.Hostname, other.Name].filter(Boolean))];
        lines.push(`${oep.ipv4}\t${names.join(' ')}`);
      }
    }
    const host = c.Config.Hostname + (c.Config.Domainname ? `.${c.Config.Domainname} ${c.Config.Hostname}` : '');
    for (const ep of eps) {
      if (ep.ipv4) lines.push(`${ep.ipv4}\t${host}`);
      if (ep.ipv6) lines.push(`${ep.ipv6}\t${host}`);
    }
    return lines;
  }

  /**
   * Docker's link variables for a container starting on the default bridge (none elsewhere).
   * Its linked containers must be running there, as moby requires (same texts).
   */
  linkEnv(c: ContainerRecord): string[] {
    const bridge = this.byName('bridge');
    if (!bridge || !c.HostConfig.Links?.length || !this.attachmentsFor(c).some((a) => a.networkId === bridge.Id)) return [];
    const env: string[] = [];
    for (const l of c.HostConfig.Links) {
      const { name, alias } = parseLink(l);
      const child = this.containers.find(name);
      if (!child) continue;
      if (!isRunning(child)) throw new SystemError(`Cannot link to a non running container: /${child.Name} AS /${c.Name}/${alias}`);
      const ep = this.endpointsOf(child.Id).find((e) => e.networkId === bridge.Id);
      if (!ep) throw new SystemError(`container ${child.Id} not attached to default bridge network`);
      env.push(...linkEnvironment(`/${c.Name}/${alias}`, ep.ipv4, child.Config.Env, Object.keys(child.Config.ExposedPorts ?? {})));
    }
    return env;
  }

  /** A container's links changed (`docker rm --link`): its /etc/hosts and link names follow. */
  async linksChanged(c: ContainerRecord): Promise<void> {
    if (isRunning(c)) this.rewriteHosts(c);
    await this.publish();
  }

  /** Docker renames the live endpoints' DNS names (`DNSNames` too); aliases stay as given. */
  async renamed(c: ContainerRecord, oldName: string): Promise<void> {
    await this.locked(c.Id, async () => {
      for (const ep of this.endpointsOf(c.Id)) {
        const n = this.nets.get(ep.networkId);
        if (!n || !ep.dnsNames.includes(oldName)) continue;
        ep.dnsNames = [...new Set(ep.dnsNames.map((x) => (x === oldName ? c.Name : x)))];
        this.saveEndpoint(ep);
        const d = this.driverOf(n);
        if (isEndpointNamesKeeper(d)) await d.endpointNamesChanged(this.driverNetwork(n), this.driverEndpoint(ep, n));
      }
    });
    await this.publish();
  }

  /**
   * `--add-host name:host-gateway` means the host as containers see it: Docker's default is the
   * default bridge's gateway address (172.17.0.1; `arca0` here).
   */
  extraHosts(c: ContainerRecord): string[] {
    const list = c.HostConfig.ExtraHosts ?? [];
    if (!list.some((h) => h.endsWith(':host-gateway'))) return list;
    const gw = this.byName('bridge')?.pools.find((p) => p.family === 4)?.gateway ?? '';
    return list.map((h) => (h.endsWith(':host-gateway') && gw ? `${h.slice(0, -'host-gateway'.length)}${gw}` : h));
  }

  /**
   * The container's resolv.conf when a network decides it: containers on a user-defined network
   * ask the embedded server (127.0.0.11); undefined leaves the host-derived file.
   */
  resolvConf(c: ContainerRecord, hostText: string): string | undefined {
    const atts = this.attachmentsFor(c);
    const userDefined = atts.some((a) => {
      const n = this.nets.get(a.networkId);
      return n && !n.predefined && this.driverOf(n).usesIpam;
    });
    if (!userDefined) return undefined;
    const lines = hostText.split('\n').map((l) => l.trim());
    let search = lines.filter((l) => /^(search|domain)\s/.test(l)).flatMap((l) => l.split(/\s+/).slice(1));
    let options = lines.filter((l) => /^options\s/.test(l)).flatMap((l) => l.split(/\s+/).slice(1)).filter((o) => !o.startsWith('ndots'));
    if (c.HostConfig.DnsSearch?.length) search = c.HostConfig.DnsSearch.filter((s) => s !== '.');
    if (c.HostConfig.DnsOptions?.length) options = c.HostConfig.DnsOptions.filter((o) => !o.startsWith('ndots'));
    const ndots = (c.HostConfig.DnsOptions ?? []).find((o) => o.startsWith('ndots')) ?? 'ndots:0';
    const out = ['nameserver 127.0.0.11'];
    if (search.length) out.push(`search ${search.join(' ')}`);
    out.push(`options ${[ndots, ...options].join(' ')}`);
    return out.join('\n') + '\n';
  }

  settings(c: ContainerRecord, sandboxKey: string): Record<string, unknown> {
    const running = isRunning(c);
    const eps = running ? this.endpointsOf(c.Id) : [];
    const networks: Record<string, unknown> = {};
    let top: Record<string, unknown> = { EndpointID: '', Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '' };
    const mode = c.HostConfig.NetworkMode;
    const atts = mode.startsWith('container:') ? [] : this.attachmentsFor(c);
    for (const a of atts) {
      const n = this.nets.get(a.networkId);
      const ep = eps.find((e) => e.networkId === a.networkId);
      const entry = {
        IPAMConfig: a.config.IPAMConfig ?? null,
        Links: a.config.Links ?? null,
        Aliases: a.config.Aliases?.length ? a.config.Aliases : null,
        MacAddress: ep?.mac ?? a.config.MacAddress ?? '',
        DriverOpts: a.config.DriverOpts ?? null,
        GwPriority: a.config.GwPriority ?? 0,
        NetworkID: a.networkId,
        EndpointID: ep?.id ?? '',
        Gateway: ep?.gateway4 ?? '',
        IPAddress: ep?.ipv4 ?? '',
        IPPrefixLen: ep?.ipv4Prefix ?? 0,
        IPv6Gateway: ep?.gateway6 ?? '',
        GlobalIPv6Address: ep?.ipv6 ?? '',
        GlobalIPv6PrefixLen: ep?.ipv6Prefix ?? 0,
        DNSNames: ep && ep.dnsNames.length ? ep.dnsNames : null,
      };
      networks[n?.Name ?? a.networkName] = entry;
      if (n?.Name === 'bridge' && n.predefined && ep) {
        top = {
          EndpointID: ep.id,
          Gateway: ep.gateway4,
          GlobalIPv6Address: ep.ipv6,
          GlobalIPv6PrefixLen: ep.ipv6Prefix,
          IPAddress: ep.ipv4,
          IPPrefixLen: ep.ipv4Prefix,
          IPv6Gateway: ep.gateway6,
          MacAddress: ep.mac,
        };
      }
    }
    const cfg = portConfig(c);
    const published = eps.flatMap((e) => e.published ?? []);
    let exposed: ReturnType<typeof exposedPorts> = [];
    try {
      exposed = exposedPorts(cfg);
    } catch {
      /* validated at create; an old record with a bad key shows no ports */
    }
    const result: Record<string, unknown> = {
      Bridge: '',
      SandboxID: running ? c.Id : '',
      SandboxKey: running ? sandboxKey : '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: mode === 'host' || mode.startsWith('container:') ? {} : networkSettingsPorts(exposed, published),
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      ...top,
      Networks: networks,
    };
    // For `GET /containers/json` (container-view reads it); not part of inspect's JSON.
    Object.defineProperty(result, 'PortsList', { value: psPorts(exposed, published), enumerable: false });
    return result;
  }

  // ---- firewall and DNS -------------------------------------------------------------------------------

  policyWorld(): ReturnType<PolicyNetworks['policyWorld']> {
    return buildPolicyWorld(this.nets.values(), this.allEndpoints(), (id) => this.containers.find(id));
  }

  firewallState(): FirewallState {
    const networks = [...this.nets.values()].flatMap((n) => {
      const d = this.driverOf(n);
      if (!isFirewallContributor(d) || n.ConfigOnly) return [];
      const f = d.firewallNetwork(this.driverNetwork(n));
      const egress = f && parseEgressOptions(n.Options);
      return f ? [egress ? { ...f, egress } : f] : [];
    });
    const ports = this.allEndpoints().flatMap((e) =>
      e.published?.length ? firewallPorts(e.published, { endpointId: e.id, networkId: e.networkId, ipv4: e.ipv4 || undefined, ipv6: e.ipv6 || undefined }) : [],
    );
    const dnsPort = this.dns.port;
    return { networks, ports, ...(dnsPort === null ? { dnsPort: null } : dnsPort ? { dnsPort } : {}) };
  }

  /**
   * A container's legacy links on a user-defined network, for the embedded DNS: the endpoint's
   * own `Links` (docker-py, compose), else `HostConfig.Links` when this is its primary network
   * (the docker CLI's `--link` with `--network <user network>`).
   */
  private linksOn(c: ContainerRecord, n: NetworkRecord): Array<{ alias: string; containerId: string }> {
    const att = this.attachmentsFor(c).find((a) => a.networkId === n.Id);
    let specs = att?.config.Links ?? [];
    if (!specs.length && (c.HostConfig.NetworkMode === n.Name || c.HostConfig.NetworkMode === n.Id)) specs = c.HostConfig.Links ?? [];
    const out: Array<{ alias: string; containerId: string }> = [];
    for (const spec of specs) {
      const { name, alias } = parseLink(spec);
      const target = this.containers.find(name);
      if (target) out.push({ alias, containerId: target.Id });
    }
    return out;
  }

  /** Addresses drivers take for themselves (VIPs), from a network's first IPv4 pool. */
  private readonly driverAddresses: DriverAddresses = {
    take: (networkId, owner) => {
      const held = this.ipam.addressOf(networkId, owner, 4);
      if (held) return held;
      const pool = this.nets.get(networkId)?.pools.find((p) => !p.subnet.includes(':'));
      if (!pool) throw new InvalidParameter(`network ${networkId} has no IPv4 subnet to take an address from`);
      return this.ipam.requestAddress(networkId, pool, owner);
    },
    release: (networkId, owner) => this.ipam.releaseOwner(networkId, owner),
  };

  /** Names a driver answers with a VIP on the network, if it does (see {@link VirtualNames}). */
  private virtualNames(n: NetworkRecord): Array<{ name: string; ipv4: string }> {
    const d = this.driverOf(n);
    return isVirtualNames(d) ? d.virtualNames(this.driverNetwork(n)) : [];
  }

  dnsSnapshot(): DnsSnapshot {
    const policyDns = this.policies?.dnsPeersByNetwork();
    const networks = [...this.nets.values()]
      .filter((n) => !n.predefined && this.driverOf(n).usesIpam)
      .map((n) => ({ n, vips: this.virtualNames(n) }))
      .map(({ n, vips }) => ({
        id: n.Id,
        name: n.Name,
        internal: n.Internal,
        ...egressNames(n),
        ...(policyDns?.get(n.Name)?.length ? { policyDns: policyDns.get(n.Name) } : {}),
        // A VIP answers for its name as an endpoint of its own would; the backends no longer do.
        endpoints: [...vips.map((v) => ({ containerId: `vip:${v.name}`, names: [v.name], ipv4: v.ipv4 })), ...this.endpointsOn(n.Id).map((e) => {
          // `--dns` on a user-defined network: the embedded server forwards this container's
          // queries there instead of to the host's resolvers (moby sets them as the sandbox
          // resolver's external servers); resolv.conf keeps 127.0.0.11.
          const c = this.containers.find(e.containerId);
          const dns = c?.HostConfig.Dns?.filter((s) => s.trim() !== '') ?? [];
          const links = c ? this.linksOn(c, n) : [];
          const virtual = new Set(vips.map((v) => v.name));
          return {
            containerId: e.containerId,
            names: virtual.size ? e.dnsNames.filter((x) => !virtual.has(x.toLowerCase())) : e.dnsNames,
            ...(e.ipv4 ? { ipv4: e.ipv4 } : {}),
            ...(e.ipv6 ? { ipv6: e.ipv6 } : {}),
            ...(dns.length ? { upstreams: dns } : {}),
            ...(links.length ? { links } : {}),
          };
        })],
      }));
    const forwardOnly = [...this.keptResolvers].map((containerId) => {
      const dns = this.containers.find(containerId)?.HostConfig.Dns?.filter((s) => s.trim() !== '') ?? [];
      return dns.length ? { containerId, upstreams: dns } : { containerId };
    });
    return { networks, upstreams: hostUpstreams(), ...(forwardOnly.length ? { forwardOnly } : {}) };
  }

  /**
   * Hands the whole state to the firewall and the DNS server. Firewall applies are serialised, and
   * skipped when the state is the one last applied (endpoint changes without ports leave it as is);
   * `force` re-applies anyway (start-up: the kernel may have lost the tables). `starting`: a
   * container about to start, whose start fails (attach leaves again) if policies govern it and
   * could not be enforced.
   */
  async publish(force = false, starting?: string): Promise<void> {
    try {
      await this.dns.update(this.dnsSnapshot());
    } catch (e) {
      log.error('DNS update failed', { error: errorMessage(e) });
    }
    let round: ReturnType<PolicyEnforcement['compile']> | undefined;
    const run = this.firewallChain.then(async () => {
      // Compiled inside the chain, from the world as it is now; attach awaits this before the
      // container's process starts, so a matching container is governed from its first packet.
      round = this.policies?.compile(this.policyWorld());
      const state: FirewallState = { ...this.firewallState(), ...(round?.firewall.length ? { policies: round.firewall } : {}) };
      const key = JSON.stringify(state);
      if (force || key !== this.lastFirewall) {
        this.lastFirewall = undefined;
        await this.firewall.apply(state);
        this.lastFirewall = key;
      }
      const settled = await round?.enforce(force);
      if (settled) {
        // The drivers no longer let out what the ruleset still judged for them: it may let go.
        const { policies: _, ...rest } = state;
        const narrowed: FirewallState = settled.length ? { ...rest, policies: settled } : rest;
        this.lastFirewall = undefined;
        await this.firewall.apply(narrowed);
        this.lastFirewall = JSON.stringify(narrowed);
      }
    });
    this.firewallChain = run.catch((e: unknown) => log.error('firewall apply failed', { firewall: this.firewall.name, error: errorMessage(e) }));
    await this.firewallChain;
    // A starting container its policies could not be enforced for must not run open: fail its start.
    if (starting && round?.governs(starting)) await run;
  }
}

/** The port part of a container's configuration. */
function portConfig(c: ContainerRecord): ContainerPortConfig {
  return { ExposedPorts: c.Config.ExposedPorts ?? null, PortBindings: c.HostConfig.PortBindings ?? null, PublishAllPorts: c.HostConfig.PublishAllPorts };
}

export { parseLink };

function matchLabels(labels: Record<string, string>, wanted: string[] | undefined, any = false): boolean {
  if (!wanted || !wanted.length) return true;
  const test = (w: string): boolean => {
    const i = w.indexOf('=');
    if (i < 0) return w in labels;
    return labels[w.slice(0, i)] === w.slice(i + 1);
  };
  return any ? wanted.some(test) : wanted.every(test);
}

function egressNames(n: NetworkRecord): { egressNames?: Array<{ name: string; wildcard: boolean }> } {
  const names = parseEgressOptions(n.Options)?.names ?? [];
  return names.length ? { egressNames: names.map((r) => ({ name: r.name, wildcard: r.wildcard })) } : {};
}

function hostUpstreams(): string[] {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^nameserver\s/.test(l))
      .map((l) => l.split(/\s+/)[1]!)
      .filter(Boolean);
  } catch {
    return [];
  }
}
