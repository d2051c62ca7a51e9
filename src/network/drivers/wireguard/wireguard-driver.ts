import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Unavailable, errorMessage } from '../../../errors.js';
import { KeyedLock } from '../../../keyed-lock.js';
import { logger } from '../../../log.js';
import { writeSysctl } from '../../../sys/sysctl.js';
import { run } from '../../../sys/runner.js';
import { cmdlineOf, readPidFile } from '../../../sys/proc-files.js';
import type { EgressLearnt, FirewallNetwork } from '../../firewall/firewall.js';
import type {
  DriverEndpoint,
  DriverNetwork,
  EndpointStatusReporter,
  FirewallContributor,
  GatewaySwitcher,
  KernelSweeper,
  LiveAttach,
  NetworkDriver,
  PolicyDnsLearner,
  PolicyEnforcer,
  Reapplier,
  Sandbox,
  Supervised,
  SupervisorContext,
} from '../../driver.js';
import type { LinkOps } from '../../link-ops.js';
import { NETNS_DIR } from '../../netns.js';
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';
import { uapiGet, uapiSet, UapiError, type WgDeviceStatus, type WgPeerConfig, type WgSetRequest } from './uapi.js';
import { keyToBase64 } from './wg-keys.js';
import { HIDDEN_TABLE, HiddenNsCounters, hiddenNsPolicies, readHiddenNsDrops, renderHiddenNsRuleset } from './wg-firewall.js';
import { HiddenNsDnsSets } from './wg-policy-dns.js';
import { PolicyDropReporter, type AddressNamer } from '../../firewall/nftables/nft-policy-readback.js';
import {
  HIDDEN_INNER_IF,
  HIDDEN_UNDERLAY_IF,
  HOST_BRIDGE_RE,
  HOST_VETH_RE,
  LISTEN_PORT,
  STATE_FILE,
  UNDERLAY_HOST_ADDRESS,
  UNDERLAY_POOL,
  WG_IF_RE,
  endpointNames,
  hiddenNetnsRe,
  networkNames,
  runtimePaths,
  uapiSocketPath,
} from './wg-names.js';
import { parseWgOptions, type WgNetworkOptions } from './wg-options.js';
import {
  WgWatcher,
  adoptWireguardGo,
  ensureInotifyInstances,
  isWireguardGo,
  raiseSocketBuffers,
  spawnWireguardGo,
  stopWireguardGo,
  wireguardGoMissing,
  type WgProcessSpec,
} from './wg-process.js';
import { WgState, type WgEndpointRecord } from './wg-state.js';

const log = logger('arca:net:wireguard');

/** Keepalive a re-created tunnel sends with, so its peers' stale sessions are replaced at once (else ~15 s). */
const RESTART_KEEPALIVE_S = 25;
/** Each wireguard-go holds one inotify instance; the default 128 per uid stops at ~125 tunnels. */
const INOTIFY_INSTANCES = 8192;
/** Metric of the unreachable routes behind each tunnel route (the tunnel's own have 0 for IPv4, 1024 for IPv6). */
const LEAK_GUARD_METRIC = 4096;
/** How often every tunnel is compared with its peers (a `get` each, about 0.5 ms). */
const AUDIT_MS = 5000;
/** How often the hidden namespaces' recorded drops are read under `--log-policy-drops` (as the daemon's firewall does). */
const DROP_POLL_MS = 1000;
/** Tries of one peer update before leaving it to the audit. */
const ANNOUNCE_ATTEMPTS = 3;
/** A tunnel that cannot be re-created is retried this often. */
const RESTART_RETRY_MS = 1000;

export interface WireguardDriverDeps {
  /** Kernel operations in the daemon's namespace (network bridges, underlay veths). */
  linkOps: LinkOps;
  /** Kernel operations acting in another namespace (hidden namespaces, containers). */
  linkOpsIn(ns: string): LinkOps;
  /** The daemon's tag (its machine-global names carry it). */
  tag: string;
  execRoot: string;
  /** `--log-policy-drops`: the hidden namespaces record dropped flows, read every second and logged. */
  policyDrops?: { namer?: AddressNamer };
}

/** One endpoint whose tunnel this daemon runs (joined, or re-applied after a restart). */
interface Tunnel {
  net: DriverNetwork;
  ep: DriverEndpoint;
  sb: Sandbox;
  pid?: number;
  /** Set while leave() takes it down: a death then is not a crash. */
  leaving?: boolean;
}

function bare(cidr: string): string {
  return cidr.split('/')[0]!;
}

/** IPv6 on one link of a hidden namespace, without DAD: its link-local address answers at once. */
async function enableIPv6(nsPath: string, ifname: string): Promise<void> {
  await writeSysctl(nsPath, `/proc/sys/net/ipv6/conf/${ifname}/accept_dad`, '0');
  await writeSysctl(nsPath, `/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`, '0');
}

function hasIPv6(net: DriverNetwork): boolean {
  return net.subnets.some((s) => s.subnet.includes(':'));
}

function ipv4Only(addrs: string[]): string[] {
  return addrs.filter((a) => !a.includes(':'));
}

/**
 * Encrypted networks: every container is a WireGuard peer of every other container of the
 * network (a full mesh, one wireguard-go per endpoint in a hidden namespace that plays the seed's
 * VM root namespace; see wg-names.ts for the layout and why one hidden namespace per endpoint).
 * The container only sees `ethN`; the hidden namespace routes its subnet into the tunnel and the
 * rest to the host over a routed /32 underlay, where the shared nftables ruleset does for the
 * network's bridge `wb<id12>` what it does for `bridge` networks.
 */
export class WireguardDriver
  implements
    NetworkDriver,
    LiveAttach,
    Reapplier,
    KernelSweeper,
    GatewaySwitcher,
    FirewallContributor,
    Supervised,
    PolicyEnforcer,
    PolicyDnsLearner,
    EndpointStatusReporter
{
  readonly name = 'wireguard';
  readonly usesIpam = true;
  readonly liveAttach = true;

  private state?: WgState;
  private ctx?: SupervisorContext;
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly byIf = new Map<string, string>();
  private readonly plans = new Map<string, NetworkPolicyPlan>();
  /** The ruleset text last loaded per hidden namespace (a policy change reloads only what differs). */
  private readonly loaded = new Map<string, string>();
  private readonly counters = new HiddenNsCounters();
  private readonly dnsSets = new HiddenNsDnsSets(HIDDEN_TABLE);
  private readonly lock = new KeyedLock();
  /**
   * Per network: a device's full configuration is computed from the records and then sent with
   * replace_peers; a peer announced in between would be wiped, so the two never interleave.
   */
  private readonly mesh = new KeyedLock();
  private readonly watcher = new WgWatcher((ifname) => this.onTunnelExit(ifname));
  private inotifyChecked = false;
  private auditTimer?: NodeJS.Timeout;
  private auditing?: Promise<void>;
  private dropTimer?: NodeJS.Timeout;
  private dropPolling?: Promise<void>;
  private readonly drops = new PolicyDropReporter((line, extra) => log.info(line, extra));

  constructor(private readonly deps: WireguardDriverDeps) {}

  // ---- supervision ---------------------------------------------------------------------------------

  async start(ctx: SupervisorContext): Promise<void> {
    this.ctx = ctx;
    this.state = new WgState(join(ctx.stateDir, STATE_FILE));
    this.auditTimer = setInterval(() => {
      if (this.auditing) return;
      this.auditing = this.audit().finally(() => (this.auditing = undefined));
    }, AUDIT_MS);
    this.auditTimer.unref();
    if (this.deps.policyDrops) {
      this.dropTimer = setInterval(() => {
        if (this.dropPolling) return;
        this.dropPolling = this.pollDrops().finally(() => (this.dropPolling = undefined));
      }, DROP_POLL_MS);
      this.dropTimer.unref();
    }
  }

  /** The flows each governed hidden namespace recorded as dropped, logged once each (`--log-policy-drops`). */
  private async pollDrops(): Promise<void> {
    const plans = [...this.plans.values()];
    const governed = new Set(plans.flatMap((p) => p.endpoints.map((e) => e.endpointId)));
    const flows: Awaited<ReturnType<typeof readHiddenNsDrops>> = [];
    for (const id of [...this.tunnels.keys()]) {
      if (!governed.has(id)) continue;
      const ns = `${NETNS_DIR}/${endpointNames(this.deps.tag, id).netns}`;
      // A namespace going away, or whose table is being reloaded, is read again next round.
      flows.push(...(await readHiddenNsDrops(ns).catch(() => [])));
    }
    this.drops.report(flows, plans, this.deps.policyDrops?.namer);
  }

  /** Tunnels outlive the daemon (the next one adopts them): only the watching stops. */
  async stop(): Promise<void> {
    clearInterval(this.auditTimer);
    clearInterval(this.dropTimer);
    await this.auditing;
    await this.dropPolling;
    this.watcher.close();
  }

  private st(): WgState {
    if (!this.state) throw new Error('wireguard driver used before start()');
    return this.state;
  }

  // ---- networks ------------------------------------------------------------------------------------

  validateNetwork(net: DriverNetwork): void {
    parseWgOptions(net);
    const missing = wireguardGoMissing();
    if (missing) throw new Unavailable(missing);
  }

  private opts(net: DriverNetwork): WgNetworkOptions {
    return parseWgOptions(net);
  }

  async createNetwork(net: DriverNetwork): Promise<void> {
    const { bridge } = networkNames(net.id);
    // The underlay is routed through the host, never bridged port to port: br_netfilter's hooks
    // would only run the host's rules a second time on every tunnel packet.
    // Nor does it need snooping, which would join the multicast router groups and announce them
    // (IGMP) on the underlay.
    await this.deps.linkOps.ensureBridge({ name: bridge, addresses: [`${UNDERLAY_HOST_ADDRESS}/32`], nfCallIptables: false, multicastSnooping: false });
    // The bridge only carries the routed underlay, unicast WireGuard: no IPv6 link-local chatter either.
    await writeSysctl(null, `/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`, '1');
  }

  async deleteNetwork(net: DriverNetwork): Promise<void> {
    this.plans.delete(net.id);
    await this.deps.linkOps.deleteLink(networkNames(net.id).bridge);
  }

  firewallNetwork(net: DriverNetwork): FirewallNetwork {
    return {
      id: net.id,
      bridge: networkNames(net.id).bridge,
      subnets4: net.subnets.filter((s) => !s.subnet.includes(':')).map((s) => s.subnet),
      subnets6: [],
      gateways: net.subnets.map((s) => s.gateway),
      internal: net.internal,
      icc: true,
      masquerade: true,
      // The seed's control-plane security: the host's own services are off limits.
      protectHost: true,
      untrackedUdp: { cidrs: [UNDERLAY_POOL], port: LISTEN_PORT },
    };
  }

  // ---- endpoints -----------------------------------------------------------------------------------

  async createEndpoint(): Promise<void> {
    // Everything is made in join: the hidden namespace's inner veth must be born in the container's.
  }

  async deleteEndpoint(net: DriverNetwork, ep: DriverEndpoint): Promise<void> {
    await this.lock.run(ep.id, async () => {
      if (this.tunnels.has(ep.id)) await this.teardown(net.id, ep.id);
      else await this.teardownRecord(ep.id);
    });
  }

  async join(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.lock.run(ep.id, () => this.build(net, ep, sb));
  }

  async leave(net: DriverNetwork, ep: DriverEndpoint): Promise<void> {
    await this.lock.run(ep.id, () => this.teardown(net.id, ep.id));
  }

  async setGateways(_net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.deps.linkOps.setDefaultRoutes(sb.netnsName, ep.ifname, ep.gateways);
  }

  async reapply(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.lock.run(ep.id, async () => {
      const names = endpointNames(this.deps.tag, ep.id);
      const hiddenPath = `${NETNS_DIR}/${names.netns}`;
      const inside = existsSync(hiddenPath) ? await this.inHidden(names.netns, (ops) => ops.links()).catch(() => []) : [];
      const whole = inside.some((l) => l.name === HIDDEN_INNER_IF) && inside.some((l) => l.name === HIDDEN_UNDERLAY_IF);
      const spec = this.processSpec(ep.id);
      if (!whole) {
        // Part of it is gone (the container's ethN dies with the hidden side): make it anew.
        log.info('wireguard endpoint incomplete, rebuilding it', { endpoint: ep.id.slice(0, 12) });
        const pid = adoptWireguardGo(spec);
        await stopWireguardGo(spec, pid);
        await deleteNetns(names.netns);
        await this.build(net, ep, sb);
        return;
      }
      const rec = this.st().ensure(ep.id, net.id, ep.addresses.map(bare));
      const t: Tunnel = { net, ep, sb };
      this.tunnels.set(ep.id, t);
      this.byIf.set(names.wgIf, ep.id);
      let pid = adoptWireguardGo(spec);
      const respawned = pid === undefined;
      if (pid === undefined) pid = await spawnWireguardGo(spec);
      else log.info('adopted wireguard-go', { interface: names.wgIf, pid });
      t.pid = pid;
      const o = this.opts(net);
      await Promise.all([
        this.configureHidden(net, ep, rec, o),
        this.configureContainer(net, ep, sb),
        this.hostRoutes(net, rec, 'replace'),
        this.loadRuleset(net, ep.id),
      ]);
      // A tunnel re-created while the daemon was down handshakes at once (its peers hold stale sessions).
      await this.meshSync(rec, respawned, respawned ? RESTART_KEEPALIVE_S : undefined);
      raiseSocketBuffers(pid, names.wgIf);
      await this.loadRuleset(net, ep.id);
      this.watcher.watch(names.wgIf, pid);
    });
  }

  /** Makes an endpoint's tunnel from nothing (join) or from what a crash left (reapply). */
  private async build(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    const o = this.opts(net);
    const rec = this.st().ensure(ep.id, net.id, ep.addresses.map(bare));
    const names = endpointNames(this.deps.tag, ep.id);
    const t: Tunnel = { net, ep, sb };
    this.tunnels.set(ep.id, t);
    this.byIf.set(names.wgIf, ep.id);
    this.checkInotify();
    const t0 = performance.now();
    const lap: Record<string, number> = {};
    try {
      // A namespace made here holds no sets a previous daemon filled: nothing to read back.
      if (!existsSync(`${NETNS_DIR}/${names.netns}`)) this.dnsSets.born(`${NETNS_DIR}/${names.netns}`);
      await createNetns(names.netns);
      lap.netns = performance.now() - t0;
      const hiddenPath = `${NETNS_DIR}/${names.netns}`;
      const [pid] = await Promise.all([
        spawnWireguardGo(this.processSpec(ep.id)),
        this.deps.linkOps.addVeth({
          hostName: names.hostVeth,
          bridge: networkNames(net.id).bridge,
          ns: names.netns,
          peerName: HIDDEN_UNDERLAY_IF,
          mtu: o.underlayMtu,
        }),
        this.inHidden(names.netns, (ops) => ops.addVeth({ hostName: HIDDEN_INNER_IF, ns: sb.netnsName, peerName: ep.ifname, mac: ep.mac, mtu: o.mtu })),
        this.loadRuleset(net, ep.id),
      ]);
      t.pid = pid;
      lap.spawn = performance.now() - t0;
      this.watcher.watch(names.wgIf, pid);
      await Promise.all([
        writeSysctl(null, `/proc/sys/net/ipv6/conf/${names.hostVeth}/disable_ipv6`, '1'),
        this.configureHidden(net, ep, rec, o),
        this.configureContainer(net, ep, sb),
        this.meshSync(rec, true),
        this.hostRoutes(net, rec, 'replace'),
      ]);
      lap.configured = performance.now() - t0;
      // The device is up with its port: its UDP sockets exist now.
      raiseSocketBuffers(pid, names.wgIf);
      // A listen port moved by a conflict changes the guard's rule (a no-op otherwise).
      await this.loadRuleset(net, ep.id);
      log.debug('wireguard endpoint joined', { endpoint: ep.id.slice(0, 12), ms: lap });
    } catch (e) {
      await this.teardown(net.id, ep.id).catch((err: unknown) => log.warn('cleaning up a failed join', { error: errorMessage(err) }));
      throw e;
    }
  }

  /** Takes an endpoint's tunnel down and forgets it; every step tolerates what is already gone. */
  private async teardown(networkId: string, endpointId: string): Promise<void> {
    const t = this.tunnels.get(endpointId);
    const names = endpointNames(this.deps.tag, endpointId);
    if (t) t.leaving = true;
    this.watcher.unwatch(names.wgIf);
    const rec = this.st().get(endpointId);
    const errors: unknown[] = [];
    if (rec) {
      await this.mesh.run(networkId, () => Promise.all(
        this.liveOthers(networkId, endpointId).map((o) =>
          uapiSet(uapiSocketPath(endpointNames(this.deps.tag, o.endpointId).wgIf), {
            peers: [{ publicKey: rec.publicKey, allowedIps: [], remove: true }],
          }).catch((e: unknown) => log.warn('removing a peer failed', { from: o.endpointId.slice(0, 12), error: errorMessage(e) })),
        ),
      ));
    }
    // What it counted since the last read stays in the network's totals.
    await this.counters.read(`${NETNS_DIR}/${names.netns}`).catch(() => undefined);
    const spec = this.processSpec(endpointId);
    await stopWireguardGo(spec, t?.pid ?? adoptWireguardGo(spec)).catch((e: unknown) => errors.push(e));
    // The kernel destroys a deleted namespace's links later, in a work queue: the container's
    // ethN would linger and a quick reconnect of the same name would meet EEXIST. Deleting c0
    // takes its peer along at once.
    if (existsSync(`${NETNS_DIR}/${names.netns}`)) {
      await this.inHidden(names.netns, (ops) => ops.deleteLink(HIDDEN_INNER_IF)).catch((e: unknown) => errors.push(e));
    }
    await deleteNetns(names.netns).catch((e: unknown) => errors.push(e));
    await this.deps.linkOps.deleteLink(names.hostVeth).catch((e: unknown) => errors.push(e));
    if (rec && t) await this.hostRoutes(t.net, rec, 'del').catch((e: unknown) => errors.push(e));
    this.counters.forget(`${NETNS_DIR}/${names.netns}`);
    this.dnsSets.forget(`${NETNS_DIR}/${names.netns}`);
    this.loaded.delete(names.netns);
    this.tunnels.delete(endpointId);
    this.byIf.delete(names.wgIf);
    this.st().remove(endpointId);
    if (errors.length) throw new AggregateError(errors, `taking down the wireguard endpoint ${endpointId.slice(0, 12)} failed in part`);
  }

  /** Cleanup of an endpoint known only from the state file (its container is gone). */
  private async teardownRecord(endpointId: string): Promise<void> {
    const rec = this.st().get(endpointId);
    const names = endpointNames(this.deps.tag, endpointId);
    const spec = this.processSpec(endpointId);
    await stopWireguardGo(spec, adoptWireguardGo(spec)).catch(() => {});
    await deleteNetns(names.netns).catch(() => {});
    await this.deps.linkOps.deleteLink(names.hostVeth).catch(() => {});
    if (rec) await deleteHostRoutes(networkNames(rec.networkId).bridge, rec).catch(() => {});
    this.st().remove(endpointId);
  }

  // ---- pieces --------------------------------------------------------------------------------------

  /** Kernel operations in a hidden namespace, released after: an open socket would pin the namespace. */
  private async inHidden<T>(netns: string, fn: (ops: LinkOps) => Promise<T>): Promise<T> {
    const ops = this.deps.linkOpsIn(netns);
    try {
      return await fn(ops);
    } finally {
      ops.close?.();
    }
  }

  private processSpec(endpointId: string): WgProcessSpec {
    const names = endpointNames(this.deps.tag, endpointId);
    return { ifname: names.wgIf, netnsPath: `${NETNS_DIR}/${names.netns}`, ...runtimePaths(this.deps.execRoot, names.wgIf) };
  }

  private checkInotify(): void {
    if (this.inotifyChecked) return;
    this.inotifyChecked = true;
    try {
      ensureInotifyInstances(INOTIFY_INSTANCES);
    } catch (e) {
      log.warn('cannot raise fs.inotify.max_user_instances; wireguard-go processes beyond it will fail', { error: errorMessage(e) });
    }
  }

  /**
   * Addresses, links and routes of the hidden namespace, in one `ip -batch` (replace: idempotent).
   * IPv6 is off in the namespace but for `c0` and the tunnel on networks that have it: the
   * underlay is IPv4 and stays silent.
   */
  private async configureHidden(net: DriverNetwork, ep: DriverEndpoint, rec: WgEndpointRecord, o: WgNetworkOptions): Promise<void> {
    const names = endpointNames(this.deps.tag, ep.id);
    const hiddenPath = `${NETNS_DIR}/${names.netns}`;
    await Promise.all([
      writeSysctl(hiddenPath, `/proc/sys/net/ipv4/conf/${HIDDEN_INNER_IF}/rp_filter`, '1'),
      writeSysctl(hiddenPath, `/proc/sys/net/ipv4/conf/${HIDDEN_INNER_IF}/proxy_arp`, '1'),
      writeSysctl(hiddenPath, `/proc/sys/net/ipv4/neigh/${HIDDEN_INNER_IF}/proxy_delay`, '0'),
      ...(hasIPv6(net) ? [HIDDEN_INNER_IF, names.wgIf].map((i) => enableIPv6(hiddenPath, i)) : []),
    ]);
    const gateways = net.subnets.map((s) => s.gateway);
    const lines = [
      `link set dev ${HIDDEN_UNDERLAY_IF} mtu ${o.underlayMtu} multicast off up`,
      `addr replace ${rec.underlay}/32 dev ${HIDDEN_UNDERLAY_IF}`,
      `route replace default via ${UNDERLAY_HOST_ADDRESS} dev ${HIDDEN_UNDERLAY_IF} onlink`,
      `link set dev ${HIDDEN_INNER_IF} mtu ${o.mtu} up`,
      ...gateways.map((g) => (g.includes(':') ? `addr replace ${g}/128 dev ${HIDDEN_INNER_IF} nodad` : `addr replace ${g}/32 dev ${HIDDEN_INNER_IF}`)),
      ...ep.addresses.map(bare).map((a) => `route replace ${a}/${a.includes(':') ? 128 : 32} dev ${HIDDEN_INNER_IF}`),
      ...this.wgLinkLines(net, names.wgIf, o),
      // The kernel drops the tunnel's routes with its interface: while a dead wireguard-go is
      // re-created, peer traffic would otherwise follow the default route onto the underlay
      // in plaintext.
      ...net.subnets.map((s) => `route replace unreachable ${s.subnet} metric ${LEAK_GUARD_METRIC}`),
    ];
    await run(['ip', '-n', names.netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  private wgLinkLines(net: DriverNetwork, wgIf: string, o: WgNetworkOptions): string[] {
    return [`link set dev ${wgIf} mtu ${o.mtu} up`, ...net.subnets.map((s) => `route replace ${s.subnet} dev ${wgIf}`)];
  }

  /**
   * The container's side, as on `bridge`; on IPv6 subnets a route through the gateway ahead of
   * the on-link one, so the container asks neighbour discovery only for the gateway (which `c0`
   * holds) and not for every peer, which Linux can only proxy address by address.
   */
  private async configureContainer(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.deps.linkOps.configureInside(sb.netnsName, { ifname: ep.ifname, addresses: ep.addresses, gateways: ep.gateways });
    const v6 = net.subnets.filter((s) => s.subnet.includes(':'));
    if (!v6.length) return;
    const lines = v6.map((s) => `route replace ${s.subnet} via ${s.gateway} dev ${ep.ifname} metric 1`);
    await run(['ip', '-n', sb.netnsName, '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  private async hostRoutes(net: DriverNetwork, rec: WgEndpointRecord, op: 'replace' | 'del'): Promise<void> {
    if (op === 'del') return deleteHostRoutes(networkNames(net.id).bridge, rec);
    const bridge = networkNames(net.id).bridge;
    await this.deps.linkOps.configureHostLink(bridge, [`${UNDERLAY_HOST_ADDRESS}/32`], [
      { prefix: `${rec.underlay}/32`, via: rec.underlay },
      ...ipv4Only(rec.addresses).map((a) => ({ prefix: `${a}/32`, via: rec.underlay })),
    ]);
  }

  /** Records of the network's other endpoints whose tunnel runs here. */
  private liveOthers(networkId: string, endpointId: string): WgEndpointRecord[] {
    return this.st()
      .ofNetwork(networkId)
      .filter((r) => {
        const t = this.tunnels.get(r.endpointId);
        return r.endpointId !== endpointId && t?.pid !== undefined && !t.leaving;
      });
  }

  private peerOf(r: WgEndpointRecord, keepalive?: number): WgPeerConfig {
    return {
      publicKey: r.publicKey,
      endpoint: `${r.underlay}:${r.listenPort}`,
      allowedIps: r.addresses.map((a) => (a.includes(':') ? `${a}/128` : `${a}/32`)),
      ...(keepalive ? { persistentKeepalive: keepalive } : {}),
    };
  }

  /** The device's whole configuration: its key, port, and every other recorded endpoint of its network. */
  private desired(rec: WgEndpointRecord, keepalive?: number): WgSetRequest {
    // An endpoint being torn down keeps its record until its objects are gone; its peers have
    // already dropped it, and an audit in between must not put it back.
    const peers = this.st()
      .ofNetwork(rec.networkId)
      .filter((r) => r.endpointId !== rec.endpointId && !this.tunnels.get(r.endpointId)?.leaving)
      .map((r) => this.peerOf(r, keepalive));
    return { privateKey: rec.privateKey, listenPort: rec.listenPort, replacePeers: true, peers };
  }

  /** The device's configuration, then this endpoint announced to its peers, under the network's mesh lock. */
  private async meshSync(rec: WgEndpointRecord, fresh: boolean, keepalive?: number): Promise<void> {
    await this.mesh.run(rec.networkId, async () => {
      const now = (await this.syncDevice(rec, fresh, keepalive)) ?? rec;
      await this.announce(now);
    });
  }

  /**
   * Brings the device to {@link desired}: a fresh one gets it whole; an adopted one only when it
   * differs (a needless replace would drop live sessions). A `set` is not atomic and a taken port
   * leaves the device without a socket, so the result is read back; a port conflict moves the
   * endpoint to the next free port and tells its peers.
   */
  private async syncDevice(rec: WgEndpointRecord, fresh: boolean, keepalive?: number): Promise<WgEndpointRecord> {
    const sock = uapiSocketPath(endpointNames(this.deps.tag, rec.endpointId).wgIf);
    let want = this.desired(rec, keepalive);
    if (!fresh) {
      const have = await uapiGet(sock);
      if (sameDevice(have, want)) return rec;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await uapiSet(sock, want);
      } catch (e) {
        if (!(e instanceof UapiError) || e.errno !== 98 || attempt >= 16) throw e;
      }
      const have = await uapiGet(sock);
      if (have.listenPort === want.listenPort && have.privateKey === rec.privateKey) return rec;
      if (attempt >= 16) throw new Error(`wireguard ${sock}: the device has no UDP socket after ${attempt + 1} attempts`);
      log.warn('wireguard listen port taken; moving the endpoint', { endpoint: rec.endpointId.slice(0, 12), port: want.listenPort });
      rec = this.st().update(rec.endpointId, { listenPort: rec.listenPort + 1 }) ?? rec;
      want = this.desired(rec, keepalive);
    }
  }

  /** Adds (or updates) this endpoint as a peer on every other live tunnel of its network. */
  private async announce(rec: WgEndpointRecord): Promise<void> {
    await Promise.all(
      this.liveOthers(rec.networkId, rec.endpointId).map(async (o) => {
        const sock = uapiSocketPath(endpointNames(this.deps.tag, o.endpointId).wgIf);
        const req: WgSetRequest = { peers: [{ ...this.peerOf(rec), replaceAllowedIps: true }] };
        for (let attempt = 1; ; attempt++) {
          try {
            return await uapiSet(sock, req);
          } catch (e) {
            // A peer that missed it would never reach the new endpoint; the audit catches what
            // the retries do not.
            if (attempt >= ANNOUNCE_ATTEMPTS) return log.warn('adding a peer failed', { to: o.endpointId.slice(0, 12), error: errorMessage(e) });
            await new Promise((r) => setTimeout(r, 50 * attempt));
          }
        }
      }),
    );
  }

  /**
   * Every tunnel is compared with what it should be ({@link desired}) now and then, and mended
   * when it drifted: a peer update lost under load, a device someone changed by hand.
   */
  private async audit(): Promise<void> {
    for (const [id, t] of [...this.tunnels]) {
      if (t.leaving || t.pid === undefined) continue;
      await this.lock
        .run(id, async () => {
          const rec = this.st().get(id);
          if (!rec || this.tunnels.get(id) !== t || t.leaving || t.pid === undefined) return;
          await this.mesh.run(rec.networkId, async () => {
            const wgIf = endpointNames(this.deps.tag, id).wgIf;
            // wireguard-go makes new sockets (with default buffers) when its link bounces.
            if (t.pid !== undefined) raiseSocketBuffers(t.pid, wgIf);
            const have = await uapiGet(uapiSocketPath(wgIf));
            if (sameDevice(have, this.desired(rec))) return;
            log.warn('wireguard tunnel drifted from its peers; mending it', { endpoint: id.slice(0, 12) });
            await this.syncDevice(rec, true);
          });
        })
        .catch((e: unknown) => log.debug('wireguard audit', { endpoint: id.slice(0, 12), error: errorMessage(e) }));
    }
  }

  /** A tunnel's wireguard-go died: re-create it with the same keys, port and peers. */
  private onTunnelExit(ifname: string): void {
    const id = this.byIf.get(ifname);
    const t = id ? this.tunnels.get(id) : undefined;
    if (!id || !t || t.leaving) return;
    t.pid = undefined;
    log.warn('wireguard-go exited; re-creating the tunnel', { interface: ifname, endpoint: id.slice(0, 12) });
    void this.lock
      .run(id, async () => {
        const cur = this.tunnels.get(id);
        if (cur !== t || t.leaving) return;
        const rec = this.st().get(id);
        if (!rec) return;
        const names = endpointNames(this.deps.tag, id);
        const pid = await spawnWireguardGo(this.processSpec(id));
        t.pid = pid;
        this.watcher.watch(names.wgIf, pid);
        // The peers still hold sessions with the dead process; a keepalive makes this side
        // handshake at once instead of waiting for the peers' rekey timeout.
        await this.meshSync(rec, true, RESTART_KEEPALIVE_S);
        if (hasIPv6(t.net)) await enableIPv6(`${NETNS_DIR}/${names.netns}`, names.wgIf);
        await run(['ip', '-n', names.netns, '-batch', '-'], { input: this.wgLinkLines(t.net, names.wgIf, this.opts(t.net)).join('\n') + '\n' });
        raiseSocketBuffers(pid, names.wgIf);
        log.info('wireguard tunnel re-created', { interface: ifname, pid });
      })
      .catch((e: unknown) => {
        this.ctx?.onFailure(new Error(`re-creating the wireguard tunnel ${ifname} failed: ${errorMessage(e)}`));
        setTimeout(() => {
          if (this.tunnels.get(id) === t && !t.leaving && t.pid === undefined) this.onTunnelExit(ifname);
        }, RESTART_RETRY_MS).unref();
      });
  }

  // ---- policies ------------------------------------------------------------------------------------

  async applyPolicies(net: DriverNetwork, plan: NetworkPolicyPlan): Promise<void> {
    this.plans.set(net.id, plan);
    this.dnsSets.retain(plan);
    const errors: unknown[] = [];
    for (const t of [...this.tunnels.values()].filter((x) => x.net.id === net.id)) {
      await this.lock.run(t.ep.id, () => (this.tunnels.get(t.ep.id) === t ? this.loadRuleset(net, t.ep.id) : Promise.resolve())).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) throw new AggregateError(errors, `network policies not applied on ${errors.length} wireguard endpoint(s)`);
  }

  async policyCounters(net: DriverNetwork): Promise<Record<string, PolicyCounters>> {
    return this.counters.totals(this.plans.get(net.id)?.policies ?? []);
  }

  /** DNS-learnt addresses of `dns` peers, into every hidden namespace of the network whose rules use them. */
  async learnPolicyDns(net: DriverNetwork, items: EgressLearnt[]): Promise<void> {
    const plan = this.plans.get(net.id);
    if (!plan) return;
    const targets = [...this.tunnels.values()].flatMap((t) => {
      if (t.net.id !== net.id) return [];
      const mine = plan.endpoints.filter((e) => e.endpointId === t.ep.id);
      return mine.length ? [{ id: t.ep.id, nsPath: `${NETNS_DIR}/${endpointNames(this.deps.tag, t.ep.id).netns}`, plan: { ...plan, endpoints: mine } }] : [];
    });
    await this.dnsSets.learn(net.id, items, targets, (t, fn) => this.lock.run(t.id, fn));
  }

  /** The hidden namespace's ruleset: protection, plus this endpoint's part of the network's policies. */
  private async loadRuleset(net: DriverNetwork, endpointId: string): Promise<void> {
    const names = endpointNames(this.deps.tag, endpointId);
    const plan = this.plans.get(net.id);
    const mine = plan?.endpoints.filter((e) => e.endpointId === endpointId) ?? [];
    const rec = this.st().get(endpointId);
    const spec = {
      networkId: net.id,
      innerIf: HIDDEN_INNER_IF,
      underlayIf: HIDDEN_UNDERLAY_IF,
      underlayPool: [UNDERLAY_POOL],
      wgIf: names.wgIf,
      listenPort: rec?.listenPort ?? 0,
      ...(rec ? { underlay: rec.underlay } : {}),
      gateways: ipv4Only(net.subnets.map((s) => s.gateway)),
      ...(plan && mine.length ? { plan: { ...plan, endpoints: mine } } : {}),
      logDrops: this.deps.policyDrops !== undefined,
    };
    // Compared without the learnt elements (their timeouts change every second); loaded with them.
    const script = renderHiddenNsRuleset(spec);
    if (this.loaded.get(names.netns) === script) return;
    const nsPath = `${NETNS_DIR}/${names.netns}`;
    await this.dnsSets.adopt(nsPath, net.id);
    await this.counters.load(nsPath, renderHiddenNsRuleset({ ...spec, dnsLearnt: this.dnsSets.elements(net.id) }), hiddenNsPolicies(spec));
    this.loaded.set(names.netns, script);
  }

  // ---- inspect -v ----------------------------------------------------------------------------------

  async endpointStatus(net: DriverNetwork): Promise<Record<string, Record<string, unknown>>> {
    const out: Record<string, Record<string, unknown>> = {};
    const recs = this.st().ofNetwork(net.id);
    const byKey = new Map(recs.map((r) => [r.publicKey, r]));
    await Promise.all(
      recs.map(async (r) => {
        const t = this.tunnels.get(r.endpointId);
        const names = endpointNames(this.deps.tag, r.endpointId);
        let dev: WgDeviceStatus | undefined;
        let error: string | undefined;
        try {
          dev = await uapiGet(uapiSocketPath(names.wgIf), 1000);
        } catch (e) {
          error = errorMessage(e);
        }
        out[r.endpointId] = {
          Interface: names.wgIf,
          PublicKey: keyToBase64(r.publicKey),
          Endpoint: `${r.underlay}:${r.listenPort}`,
          ListenPort: dev?.listenPort ?? null,
          Pid: t?.pid ?? null,
          ...(error ? { Error: error } : {}),
          Peers: (dev?.peers ?? []).map((p) => ({
            PublicKey: keyToBase64(p.publicKey),
            EndpointID: byKey.get(p.publicKey)?.endpointId ?? '',
            Endpoint: p.endpoint ?? '',
            AllowedIPs: p.allowedIps,
            LatestHandshake: p.lastHandshakeSec ? new Date(p.lastHandshakeSec * 1000).toISOString() : '',
            RxBytes: p.rxBytes,
            TxBytes: p.txBytes,
          })),
        };
      }),
    );
    return out;
  }

  // ---- start-up sweep ------------------------------------------------------------------------------

  async sweep(known: { networks: DriverNetwork[]; endpoints: DriverEndpoint[] }): Promise<void> {
    const nets = new Set(known.networks.map((n) => n.id));
    const eps = new Set(known.endpoints.filter((e) => nets.has(e.networkId)).map((e) => e.id));
    const errors: unknown[] = [];
    // Endpoints recorded but no longer in the database (removed while the daemon was down).
    for (const r of this.st().all()) {
      if (eps.has(r.endpointId)) continue;
      log.info('removing a wireguard endpoint the database does not know', { endpoint: r.endpointId.slice(0, 12) });
      await this.teardownRecord(r.endpointId).catch((e: unknown) => errors.push(e));
    }
    const liveIfs = new Set([...this.tunnels.keys()].map((id) => endpointNames(this.deps.tag, id).wgIf));
    const liveNs = new Set([...this.tunnels.keys()].map((id) => endpointNames(this.deps.tag, id).netns));
    // wireguard-go processes of unknown endpoints (a crash between spawn and record).
    const dir = join(this.deps.execRoot, 'wireguard');
    for (const f of safeReaddir(dir)) {
      const m = /^(wg[0-9a-f]{12})\.pid$/.exec(f);
      if (!m || liveIfs.has(m[1]!)) continue;
      const ifname = m[1]!;
      const spec: WgProcessSpec = { ifname, netnsPath: '', ...runtimePaths(this.deps.execRoot, ifname) };
      const pid = readPidFile(spec.pidFile);
      if (pid !== undefined && isWireguardGo(pid, ifname)) log.info('stopping an orphaned wireguard-go', { interface: ifname, pid });
      await stopWireguardGo(spec, pid).catch((e: unknown) => errors.push(e));
    }
    // Hidden namespaces of unknown endpoints, and any wireguard-go still inside one.
    const re = hiddenNetnsRe(this.deps.tag);
    for (const ns of safeReaddir(NETNS_DIR)) {
      if (!re.test(ns) || liveNs.has(ns)) continue;
      log.info('removing an orphaned wireguard namespace', { netns: ns });
      for (const pid of wireguardGoIn(`${NETNS_DIR}/${ns}`)) {
        const ifname = cmdlineOf(pid)[1] ?? '';
        if (!WG_IF_RE.test(ifname)) continue;
        await stopWireguardGo({ ifname, netnsPath: `${NETNS_DIR}/${ns}`, ...runtimePaths(this.deps.execRoot, ifname) }, pid).catch((e: unknown) =>
          errors.push(e),
        );
      }
      await deleteNetns(ns).catch((e: unknown) => errors.push(e));
    }
    const bridges = new Set(known.networks.map((n) => networkNames(n.id).bridge));
    const veths = new Set([...this.tunnels.keys()].map((id) => endpointNames(this.deps.tag, id).hostVeth));
    for (const l of await this.deps.linkOps.links()) {
      const stale = (HOST_BRIDGE_RE.test(l.name) && l.kind === 'bridge' && !bridges.has(l.name)) || (HOST_VETH_RE.test(l.name) && l.kind === 'veth' && !veths.has(l.name));
      if (!stale) continue;
      log.info('removing a link the database does not know', { link: l.name });
      await this.deps.linkOps.deleteLink(l.name).catch((e: unknown) => errors.push(e));
    }
    // Host routes to underlay addresses no endpoint holds any more.
    const underlays = new Set(this.st().all().map((r) => r.underlay));
    for (const n of known.networks) {
      if (!bridges.has(networkNames(n.id).bridge)) continue;
      await sweepHostRoutes(networkNames(n.id).bridge, underlays).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) throw new AggregateError(errors, 'wireguard sweep failed in part');
  }
}

// ---- helpers ---------------------------------------------------------------------------------------

function sameDevice(have: WgDeviceStatus, want: WgSetRequest): boolean {
  if (have.privateKey !== want.privateKey || have.listenPort !== want.listenPort) return false;
  const wantPeers = want.peers ?? [];
  if (have.peers.length !== wantPeers.length) return false;
  const byKey = new Map(have.peers.map((p) => [p.publicKey, p]));
  return wantPeers.every((w) => {
    const h = byKey.get(w.publicKey);
    return h !== undefined && h.endpoint === w.endpoint && [...h.allowedIps].sort().join(',') === [...w.allowedIps].sort().join(',');
  });
}


/**
 * A hidden namespace, made with IPv6 off (its links carry only the IPv4 underlay and overlay: no
 * link-local chatter on the underlay, nothing the firewall must think about) and forwarding on.
 */
async function createNetns(name: string): Promise<void> {
  const path = `${NETNS_DIR}/${name}`;
  if (!existsSync(path)) await run(['ip', 'netns', 'add', name]);
  await Promise.all([
    writeSysctl(path, '/proc/sys/net/ipv6/conf/default/disable_ipv6', '1'),
    writeSysctl(path, '/proc/sys/net/ipv6/conf/all/forwarding', '1'),
    writeSysctl(path, '/proc/sys/net/ipv4/ip_forward', '1'),
  ]);
}

async function deleteNetns(name: string): Promise<void> {
  if (!existsSync(`${NETNS_DIR}/${name}`)) return;
  await run(['ip', 'netns', 'delete', name], { allowFailure: true });
}

async function deleteHostRoutes(bridge: string, rec: WgEndpointRecord): Promise<void> {
  const lines = [`route del ${rec.underlay}/32 dev ${bridge}`, ...ipv4Only(rec.addresses).map((a) => `route del ${a}/32 dev ${bridge}`)];
  await run(['ip', '-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFailure: true });
}

/** Removes routes on a network bridge through underlay addresses no endpoint holds. */
async function sweepHostRoutes(bridge: string, underlays: Set<string>): Promise<void> {
  const r = await run(['ip', '-j', 'route', 'show', 'dev', bridge], { allowFailure: true });
  if (r.code !== 0) return;
  const routes = JSON.parse(r.stdout || '[]') as Array<{ dst: string; gateway?: string }>;
  const stale = routes.filter((x) => x.gateway !== undefined && !underlays.has(x.gateway));
  if (!stale.length) return;
  await run(['ip', '-force', '-batch', '-'], { input: stale.map((x) => `route del ${x.dst} dev ${bridge}`).join('\n') + '\n', allowFailure: true });
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** PIDs of wireguard-go processes whose network namespace is the one at `nsPath`. */
function wireguardGoIn(nsPath: string): number[] {
  let ino: number;
  try {
    ino = statSync(nsPath).ino;
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const d of safeReaddir('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    const pid = Number(d);
    try {
      if (statSync(`/proc/${pid}/ns/net`).ino !== ino) continue;
    } catch {
      continue;
    }
    const cmd = cmdlineOf(pid);
    if (cmd[0] && /(^|\/)wireguard-go$/.test(cmd[0])) out.push(pid);
  }
  return out;
}

