import { nftLoad } from '../sys/nft.js';
import { writeSysctl } from '../sys/sysctl.js';

/** Where a container's 127.0.0.11:53 goes. */
export interface DnsRedirectTarget {
  /** The listener (a gateway address) and its port. */
  address: string;
  port: number;
  /** The container's own address on that network: the source the server identifies it by. */
  source: string;
}

const TABLE = 'arca_dns';

/**
 * Inside a container's namespace: 127.0.0.11:53 (UDP and TCP) is DNATed to the daemon's DNS
 * listener, and the loopback source rewritten to the container's address so the reply finds its
 * way back and the server knows who asked. The kernel drops loopback-sourced packets leaving a
 * real interface unless `route_localnet` is on, hence the sysctl.
 */
export async function applyDnsRedirect(netnsPath: string, target: DnsRedirectTarget | undefined): Promise<void> {
  if (!target) {
    await nftLoad(`table ip ${TABLE}\ndelete table ip ${TABLE}\n`, netnsPath);
    return;
  }
  const to = `${target.address}:${target.port}`;
  const script = [
    `table ip ${TABLE}`,
    `delete table ip ${TABLE}`,
    `table ip ${TABLE} {`,
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    `    ip daddr 127.0.0.11 udp dport 53 dnat to ${to}`,
    `    ip daddr 127.0.0.11 tcp dport 53 dnat to ${to}`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    ip saddr 127.0.0.0/8 ip daddr ${target.address} udp dport ${target.port} snat to ${target.source}`,
    `    ip saddr 127.0.0.0/8 ip daddr ${target.address} tcp dport ${target.port} snat to ${target.source}`,
    '  }',
    '}',
  ].join('\n');
  await Promise.all([
    writeSysctl(netnsPath, '/proc/sys/net/ipv4/conf/all/route_localnet', '1'),
    nftLoad(script + '\n', netnsPath),
  ]);
}
