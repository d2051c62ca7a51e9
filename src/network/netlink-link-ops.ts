import { closeSync, openSync, constants as fsc } from 'node:fs';
import type { NativeHelpers } from '../sys/native.js';
import {
  AF_INET,
  AF_INET6,
  attr,
  IFA_ADDRESS,
  IFA_F_NODAD,
  IFA_F_PERMANENT,
  IFA_FLAGS,
  IFA_LOCAL,
  ifaddrmsg,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_BR_NF_CALL_IP6TABLES,
  IFLA_BR_MCAST_SNOOPING,
  IFLA_BR_NF_CALL_IPTABLES,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  ifinfomsg,
  ipBytes,
  macBytes,
  NetlinkError,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  parseLink,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  rtmsg,
  RTNH_F_ONLINK,
  VETH_INFO_PEER,
  type Attr,
} from '../sys/netlink.js';
import { RtnlSocket, type NlOp } from '../sys/rtnl-socket.js';
import { bridgeMac, type BridgeSpec, type InterfaceConfig, type LinkInfo, type LinkOps, type OnlinkRoute, type VethSpec } from './link-ops.js';

const NETNS_DIR = '/run/netns';

function nsPath(ns: string): string {
  return ns.startsWith('/') ? ns : `${NETNS_DIR}/${ns}`;
}

function splitCidr(cidr: string): { ip: string; prefix: number } {
  const i = cidr.indexOf('/');
  if (i < 0) return { ip: cidr, prefix: cidr.includes(':') ? 128 : 32 };
  return { ip: cidr.slice(0, i), prefix: Number(cidr.slice(i + 1)) };
}

const byName = (name: string, what: string): NlOp => ({ type: RTM_GETLINK, fixed: ifinfomsg(), attrs: [attr.str(IFLA_IFNAME, name)], what });

function addrOp(index: number, cidr: string, ifname: string): NlOp {
  const { ip, prefix } = splitCidr(cidr);
  const { family, bytes } = ipBytes(ip);
  const flags = IFA_F_PERMANENT | (family === AF_INET6 ? IFA_F_NODAD : 0);
  return {
    type: RTM_NEWADDR,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    fixed: ifaddrmsg(family, prefix, flags, index),
    attrs: [attr.bytes(IFA_LOCAL, bytes), attr.bytes(IFA_ADDRESS, bytes), attr.u32(IFA_FLAGS, flags)],
    what: `addr replace ${cidr} dev ${ifname}`,
  };
}

const upOp = (index: number, ifname: string): NlOp => ({
  type: RTM_NEWLINK,
  fixed: ifinfomsg({ index, flags: IFF_UP, change: IFF_UP }),
  what: `link set ${ifname} up`,
});

function defaultRouteOp(index: number, gateway: string, ifname: string): NlOp {
  const { family, bytes } = ipBytes(gateway);
  return {
    type: RTM_NEWROUTE,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    fixed: rtmsg(family, 0),
    attrs: [attr.bytes(RTA_GATEWAY, bytes), attr.u32(RTA_OIF, index)],
    what: `route replace default via ${gateway} dev ${ifname}`,
  };
}

function onlinkRouteOp(index: number, r: OnlinkRoute, ifname: string): NlOp {
  const { ip, prefix } = splitCidr(r.prefix);
  const dst = ipBytes(ip);
  return {
    type: RTM_NEWROUTE,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    fixed: rtmsg(dst.family, prefix, RTNH_F_ONLINK),
    attrs: [attr.bytes(RTA_DST, dst.bytes), attr.bytes(RTA_GATEWAY, ipBytes(r.via).bytes), attr.u32(RTA_OIF, index)],
    what: `route replace ${r.prefix} via ${r.via} dev ${ifname} onlink`,
  };
}

function delDefaultOp(index: number, family: number, ifname: string): NlOp {
  return {
    type: RTM_DELROUTE,
    fixed: rtmsg(family, 0),
    attrs: [attr.bytes(RTA_DST, Buffer.alloc(family === AF_INET ? 4 : 16)), attr.u32(RTA_OIF, index)],
    what: `route del default dev ${ifname}`,
    ok: ['ESRCH', 'ENOENT'],
  };
}

/**
 * {@link LinkOps} over rtnetlink, through the native addon: no process per operation. A socket in
 * the daemon's namespace is kept; a container namespace gets a socket for the length of a call.
 * Several messages go in one datagram where the kernel can take them in order (create + look up,
 * addresses + up + routes).
 */
export class NetlinkLinkOps implements LinkOps {
  private readonly host: RtnlSocket;
  /**
   * Deletions get their own socket: the kernel takes tens of ms to delete a link, and requests on
   * one socket are served in order, so a deletion finishing in the background would hold up
   * everything queued behind it.
   */
  private readonly deleter: RtnlSocket;

  /** `hostNs`: a namespace standing for the daemon's own (tests); the daemon's own when omitted. */
  constructor(
    private readonly n: NativeHelpers,
    hostNs?: string,
  ) {
    this.host = RtnlSocket.open(n, hostNs ? nsPath(hostNs) : undefined);
    this.deleter = RtnlSocket.open(n, hostNs ? nsPath(hostNs) : undefined);
  }

  close(): void {
    this.host.close();
    this.deleter.close();
  }

  private async inNs<T>(ns: string, fn: (s: RtnlSocket) => Promise<T>): Promise<T> {
    let s: RtnlSocket;
    try {
      s = RtnlSocket.open(this.n, nsPath(ns));
    } catch (err) {
      throw new NetlinkError(`open namespace ${ns}`, Math.abs((err as { errno?: number }).errno ?? 2));
    }
    try {
      return await fn(s);
    } finally {
      s.close();
    }
  }

  private static async indexOf(s: RtnlSocket, name: string): Promise<number> {
    const [replies] = await s.request([byName(name, `link show ${name}`)]);
    const r = replies?.[0];
    if (!r) throw new NetlinkError(`link show ${name}`, 19);
    return parseLink(r.payload).index;
  }

  private static async dump(s: RtnlSocket): Promise<LinkInfo[]> {
    const [replies] = await s.request([{ type: RTM_GETLINK, flags: NLM_F_DUMP, fixed: ifinfomsg(), what: 'link show' }]);
    const links = (replies ?? []).map((r) => parseLink(r.payload));
    const names = new Map(links.map((l) => [l.index, l.name]));
    return links.map((l) => ({
      name: l.name,
      kind: l.kind,
      master: l.master !== undefined ? names.get(l.master) : undefined,
      up: (l.flags & IFF_UP) !== 0,
    }));
  }

  links(): Promise<LinkInfo[]> {
    return NetlinkLinkOps.dump(this.host);
  }

  async ensureBridge(spec: BridgeSpec): Promise<void> {
    const info: Attr[] = [attr.str(IFLA_INFO_KIND, 'bridge')];
    const data: Attr[] = [];
    if (spec.nfCallIptables !== undefined) {
      const v = spec.nfCallIptables ? 1 : 0;
      data.push(attr.u8(IFLA_BR_NF_CALL_IPTABLES, v), attr.u8(IFLA_BR_NF_CALL_IP6TABLES, v));
    }
    if (spec.multicastSnooping !== undefined) data.push(attr.u8(IFLA_BR_MCAST_SNOOPING, spec.multicastSnooping ? 1 : 0));
    if (data.length) info.push(attr.nested(IFLA_INFO_DATA, data));
    const settings: Attr[] = [attr.str(IFLA_IFNAME, spec.name), attr.bytes(IFLA_ADDRESS, macBytes(bridgeMac(spec.name)))];
    if (spec.mtu) settings.push(attr.u32(IFLA_MTU, spec.mtu));
    const [, , got] = await this.host.request([
      {
        type: RTM_NEWLINK,
        flags: NLM_F_CREATE | NLM_F_EXCL,
        fixed: ifinfomsg(),
        attrs: [...settings, attr.nested(IFLA_LINKINFO, [attr.str(IFLA_INFO_KIND, 'bridge')])],
        what: `link add ${spec.name} type bridge`,
        ok: ['EEXIST'],
      },
      // Settings again on an existing bridge (MTU, nf_call_*): NEWLINK without CREATE changes it.
      { type: RTM_NEWLINK, fixed: ifinfomsg(), attrs: [...settings, attr.nested(IFLA_LINKINFO, info)], what: `link set ${spec.name}` },
      byName(spec.name, `link show ${spec.name}`),
    ]);
    const index = got?.[0] ? parseLink(got[0].payload).index : 0;
    if (!index) throw new NetlinkError(`link show ${spec.name}`, 19);
    await this.host.request([...spec.addresses.map((a) => addrOp(index, a, spec.name)), upOp(index, spec.name)]);
  }

  async deleteLink(name: string): Promise<void> {
    await this.deleter.request([
      { type: RTM_DELLINK, fixed: ifinfomsg(), attrs: [attr.str(IFLA_IFNAME, name)], what: `link del ${name}`, ok: ['ENODEV'] },
    ]);
  }

  async configureHostLink(name: string, addresses: string[], routes: OnlinkRoute[]): Promise<void> {
    const index = await NetlinkLinkOps.indexOf(this.host, name);
    await this.host.request([...addresses.map((a) => addrOp(index, a, name)), upOp(index, name), ...routes.map((r) => onlinkRouteOp(index, r, name))]);
  }

  async setUp(name: string): Promise<void> {
    await this.host.request([{ type: RTM_NEWLINK, fixed: ifinfomsg({ flags: IFF_UP, change: IFF_UP }), attrs: [attr.str(IFLA_IFNAME, name)], what: `link set ${name} up` }]);
  }

  async setDown(name: string): Promise<void> {
    await this.host.request([
      { type: RTM_NEWLINK, fixed: ifinfomsg({ flags: 0, change: IFF_UP }), attrs: [attr.str(IFLA_IFNAME, name)], what: `link set ${name} down`, ok: ['ENODEV'] },
    ]);
  }

  async addVeth(spec: VethSpec): Promise<void> {
    const master = spec.bridge ? await NetlinkLinkOps.indexOf(this.host, spec.bridge) : undefined;
    let fd: number;
    try {
      fd = openSync(nsPath(spec.ns), fsc.O_RDONLY);
    } catch (err) {
      throw new NetlinkError(`open namespace ${spec.ns}`, Math.abs((err as { errno?: number }).errno ?? 2));
    }
    try {
      const mtu = spec.mtu ? [attr.u32(IFLA_MTU, spec.mtu)] : [];
      const peer = attr.nested(
        VETH_INFO_PEER,
        [attr.str(IFLA_IFNAME, spec.peerName), ...(spec.mac ? [attr.bytes(IFLA_ADDRESS, macBytes(spec.mac))] : []), ...mtu, attr.u32(IFLA_NET_NS_FD, fd)],
        ifinfomsg(),
      );
      await this.host.request([
        {
          type: RTM_NEWLINK,
          flags: NLM_F_CREATE | NLM_F_EXCL,
          fixed: ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
          attrs: [
            attr.str(IFLA_IFNAME, spec.hostName),
            ...mtu,
            ...(master !== undefined ? [attr.u32(IFLA_MASTER, master)] : []),
            attr.nested(IFLA_LINKINFO, [attr.str(IFLA_INFO_KIND, 'veth'), attr.nested(IFLA_INFO_DATA, [peer])]),
          ],
          what: `link add ${spec.hostName} type veth peer ${spec.peerName} netns ${spec.ns}`,
        },
      ]);
    } finally {
      closeSync(fd);
    }
  }

  async enslave(name: string, bridge: string): Promise<void> {
    const master = await NetlinkLinkOps.indexOf(this.host, bridge);
    await this.host.request([
      {
        type: RTM_NEWLINK,
        fixed: ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
        attrs: [attr.str(IFLA_IFNAME, name), attr.u32(IFLA_MASTER, master)],
        what: `link set ${name} master ${bridge} up`,
      },
    ]);
  }

  async configureInside(ns: string, cfg: InterfaceConfig): Promise<void> {
    await this.inNs(ns, async (s) => {
      const index = await NetlinkLinkOps.indexOf(s, cfg.ifname);
      await s.request([
        ...cfg.addresses.map((a) => addrOp(index, a, cfg.ifname)),
        upOp(index, cfg.ifname),
        ...cfg.gateways.map((g) => defaultRouteOp(index, g, cfg.ifname)),
      ]);
    });
  }

  async setDefaultRoutes(ns: string, ifname: string, gateways: string[]): Promise<void> {
    await this.inNs(ns, async (s) => {
      const index = await NetlinkLinkOps.indexOf(s, ifname);
      const ops = gateways.map((g) => defaultRouteOp(index, g, ifname));
      if (!gateways.some((g) => !g.includes(':'))) ops.push(delDefaultOp(index, AF_INET, ifname));
      if (!gateways.some((g) => g.includes(':'))) ops.push(delDefaultOp(index, AF_INET6, ifname));
      await s.request(ops);
    });
  }

  async linksInside(ns: string): Promise<string[]> {
    try {
      return await this.inNs(ns, async (s) => (await NetlinkLinkOps.dump(s)).map((l) => l.name));
    } catch {
      return [];
    }
  }
}
