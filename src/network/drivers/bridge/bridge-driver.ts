import { InvalidParameter } from '../../../errors.js';
import { logger } from '../../../log.js';
import type { FirewallNetwork } from '../../firewall/firewall.js';
import type {
  DriverEndpoint,
  DriverNetwork,
  FirewallContributor,
  GatewaySwitcher,
  KernelSweeper,
  LiveAttach,
  NetworkDriver,
  Reapplier,
  Sandbox,
} from '../../driver.js';
import type { LinkOps } from '../../link-ops.js';

const log = logger('arca:net:bridge');

/** The predefined network's Linux bridge: never `docker0`, so arca and Docker can share a machine. */
export const DEFAULT_BRIDGE_NAME = 'arca0';

export const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
export const OPT_ICC = 'com.docker.network.bridge.enable_icc';
export const OPT_MASQUERADE = 'com.docker.network.bridge.enable_ip_masquerade';
export const OPT_HOST_BINDING = 'com.docker.network.bridge.host_binding_ipv4';
export const OPT_MTU = 'com.docker.network.driver.mtu';

const AUTO_BRIDGE = /^br-[0-9a-f]{12}$/;
const HOST_VETH = /^vx[0-9a-f]{12}$/;

function prefixLen(cidr: string): string {
  return cidr.slice(cidr.indexOf('/'));
}

function parseBool(net: DriverNetwork, key: string, dflt: boolean): boolean {
  const v = net.options[key];
  if (v === undefined || v === '') return dflt;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new InvalidParameter(`invalid value for ${key}: strconv.ParseBool: parsing "${v}": invalid syntax`);
}

/**
 * Docker's `bridge` driver on a Linux bridge per network: gateways on the bridge, one veth per
 * endpoint whose container side is created directly inside the container's namespace (no move,
 * no rename), then one `ip -batch` inside for addresses and routes.
 */
export class BridgeDriver implements NetworkDriver, LiveAttach, Reapplier, KernelSweeper, GatewaySwitcher, FirewallContributor {
  readonly name = 'bridge';
  readonly usesIpam = true;
  readonly liveAttach = true;

  /** Bridges on their way out (deleted after the answer): a create of the same name waits. */
  private readonly retiring = new Map<string, Promise<void>>();

  constructor(private readonly ops: LinkOps) {}

  /** The Linux bridge of a network. */
  bridgeName(net: DriverNetwork): string {
    if (net.predefined) return DEFAULT_BRIDGE_NAME;
    return net.options[OPT_BRIDGE_NAME] || `br-${net.id.slice(0, 12)}`;
  }

  /** The host side of an endpoint's veth. */
  hostVethName(ep: DriverEndpoint): string {
    return `vx${ep.id.slice(0, 12)}`;
  }

  private mtu(net: DriverNetwork): number | undefined {
    const v = net.options[OPT_MTU];
    return v ? Number(v) : undefined;
  }

  validateNetwork(net: DriverNetwork): void {
    const name = net.options[OPT_BRIDGE_NAME];
    if (name !== undefined && (name.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(name))) {
      throw new InvalidParameter(`invalid bridge name: ${name}`);
    }
    const mtu = net.options[OPT_MTU];
    if (mtu !== undefined && mtu !== '' && (!/^[0-9]+$/.test(mtu) || Number(mtu) < 68 || Number(mtu) > 65535)) {
      throw new InvalidParameter(`invalid MTU number: ${mtu}`);
    }
    parseBool(net, OPT_ICC, true);
    parseBool(net, OPT_MASQUERADE, true);
  }

  async createNetwork(net: DriverNetwork): Promise<void> {
    await this.retiring.get(this.bridgeName(net));
    // Internal networks still get their gateway address on the bridge (Docker does the same:
    // the address is there, only the routes out are missing).
    await this.ops.ensureBridge({
      name: this.bridgeName(net),
      addresses: net.subnets.map((s) => s.gateway + prefixLen(s.subnet)),
      mtu: this.mtu(net),
    });
  }

  /**
   * The kernel takes 30-50 ms to delete a bridge (it waits for RCU readers). An auto-named bridge
   * (`br-<id>`, never reused) is set down at once, which takes its routes along, and deleted after
   * the answer; a daemon that dies first leaves it to the start-up sweep, which removes `br-<id>`
   * bridges the database does not know. A user-named bridge is deleted before answering, since
   * nothing would sweep it.
   */
  async deleteNetwork(net: DriverNetwork): Promise<void> {
    const name = this.bridgeName(net);
    if (!AUTO_BRIDGE.test(name)) {
      await this.ops.deleteLink(name);
      return;
    }
    await this.ops.setDown(name);
    const gone = this.ops
      .deleteLink(name)
      .catch((e: unknown) => log.warn('deleting a retired bridge failed; the start-up sweep will retry', { bridge: name, error: String(e) }))
      .finally(() => this.retiring.delete(name));
    this.retiring.set(name, gone);
  }

  /** Resolves when every bridge set aside by {@link deleteNetwork} is gone. */
  async drain(): Promise<void> {
    await Promise.all([...this.retiring.values()]);
  }

  async createEndpoint(): Promise<void> {
    // The veth is made in join: its peer must be born inside the container's namespace.
  }

  async deleteEndpoint(_net: DriverNetwork, ep: DriverEndpoint, sb?: Sandbox): Promise<void> {
    // The pair dies with a closing namespace (the kernel removes both ends, off our path).
    if (sb?.closing) return;
    await this.ops.deleteLink(this.hostVethName(ep));
  }

  async join(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.ops.addVeth({
      hostName: this.hostVethName(ep),
      bridge: this.bridgeName(net),
      ns: sb.netnsName,
      peerName: ep.ifname,
      mac: ep.mac,
      mtu: this.mtu(net),
    });
    await this.ops.configureInside(sb.netnsName, { ifname: ep.ifname, addresses: ep.addresses, gateways: ep.gateways });
  }

  async leave(_net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    if (sb.closing) return;
    // Deleting one end of a veth deletes both.
    await this.ops.deleteLink(this.hostVethName(ep));
  }

  async reapply(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    const host = this.hostVethName(ep);
    const links = await this.ops.links();
    const mine = links.find((l) => l.name === host);
    if (!mine) {
      // The inside may still hold a stale interface of that name (host side deleted by hand).
      const inside = await this.ops.linksInside(sb.netnsName);
      if (inside.includes(ep.ifname)) log.warn('stale interface inside the container, joining anew', { ifname: ep.ifname });
      await this.join(net, ep, sb);
      return;
    }
    if (mine.master !== this.bridgeName(net) || !mine.up) await this.ops.enslave(host, this.bridgeName(net));
    await this.ops.configureInside(sb.netnsName, { ifname: ep.ifname, addresses: ep.addresses, gateways: ep.gateways });
  }

  async setGateways(_net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.ops.setDefaultRoutes(sb.netnsName, ep.ifname, ep.gateways);
  }

  async sweep(known: { networks: DriverNetwork[]; endpoints: DriverEndpoint[] }): Promise<void> {
    const bridges = new Set(known.networks.filter((n) => n.id).map((n) => this.bridgeName(n)));
    const veths = new Set(known.endpoints.map((e) => this.hostVethName(e)));
    const errors: unknown[] = [];
    for (const l of await this.ops.links()) {
      const stale =
        (l.kind === 'bridge' && (AUTO_BRIDGE.test(l.name) || l.name === DEFAULT_BRIDGE_NAME) && !bridges.has(l.name)) ||
        (l.kind === 'veth' && HOST_VETH.test(l.name) && !veths.has(l.name));
      if (!stale) continue;
      log.info('removing a link the database does not know', { link: l.name });
      await this.ops.deleteLink(l.name).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) throw new AggregateError(errors, 'bridge sweep failed in part');
  }

  firewallNetwork(net: DriverNetwork): FirewallNetwork {
    return {
      id: net.id,
      bridge: this.bridgeName(net),
      subnets4: net.subnets.filter((s) => !s.subnet.includes(':')).map((s) => s.subnet),
      subnets6: net.subnets.filter((s) => s.subnet.includes(':')).map((s) => s.subnet),
      gateways: net.subnets.map((s) => s.gateway),
      internal: net.internal,
      icc: parseBool(net, OPT_ICC, true),
      masquerade: parseBool(net, OPT_MASQUERADE, true),
    };
  }
}
