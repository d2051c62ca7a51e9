/**
 * UDP over OVS's userspace datapath (3.1) loses its checksum: a veth hands OVS packets whose UDP
 * checksum is still the kernel's partial one (CHECKSUM_PARTIAL, completed later by "hardware"),
 * and OVS forwards the bytes without completing it or passing the offload on, so every receiver
 * drops them (UdpInCsumErrors). TCP is spared by userspace TSO. No tc `csum` action exists in
 * this kernel, and turning checksum offload off on the container's interface would turn TSO off
 * with it. So IPv4 UDP entering OVS carries no checksum at all (0: "none", valid for IPv4 and kept
 * by NAT), set where it enters: in the container for what it sends, on the host's transit link for
 * what comes in from outside. IPv6 UDP must carry a checksum: it stays broken across OVN for now.
 */
import { nftLoad } from '../../../sys/nft.js';

/** The container-side table for one interface (`ip arca_ovn_<ifname>`). */
function tableName(ifname: string): string {
  if (!/^[A-Za-z0-9_]{1,15}$/.test(ifname)) throw new Error(`invalid interface name "${ifname}"`);
  return `arca_ovn_${ifname}`;
}

/** Inside the container: IPv4 UDP leaving `ifname` gets checksum 0. Idempotent. */
export async function zeroUdpChecksumsFrom(netnsPath: string, ifname: string): Promise<void> {
  const t = tableName(ifname);
  const script = [
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '\tchain postrouting {',
    // After NAT (srcnat is 100): NAT would update a checksum of 0 incrementally into garbage.
    '\t\ttype filter hook postrouting priority 200; policy accept;',
    `\t\toifname "${ifname}" udp checksum set 0`,
    '\t}',
    '}',
  ].join('\n');
  await nftLoad(script + '\n', netnsPath);
}

/** Removes it again (live disconnect: the name may come back on another driver). */
export async function keepUdpChecksumsFrom(netnsPath: string, ifname: string): Promise<void> {
  const t = tableName(ifname);
  await nftLoad(`table ip ${t} {}\ndelete table ip ${t}\n`, netnsPath);
}
