import type { DnsSnapshot } from './dns/dns-snapshot.js';

/** Where containers' queries to 127.0.0.11:53 are redirected for one network. */
export interface DnsListener {
  address: string;
  port: number;
}

/**
 * The seam to the embedded DNS server (127.0.0.11 in containers on user-defined networks). The
 * NetworkManager calls {@link DnsService.update} with a complete, immutable snapshot after every
 * change to networks or endpoints; the server swaps it in whole.
 */
export interface DnsService {
  update(snapshot: DnsSnapshot): void | Promise<void>;
  /**
   * The listener serving a network whose gateway is `gateway` (made on first use), or undefined
   * when there is no server: then containers' resolv.conf still says 127.0.0.11 but nothing answers.
   */
  listenerFor?(networkId: string, gateway: string): Promise<DnsListener | undefined>;
  /** The port every listener tries to share (the firewall opens it on gateways). */
  readonly port?: number;
  close?(): Promise<void>;
}

/** Until the DNS server is wired in: accepts snapshots, answers nothing. */
export class NoDnsService implements DnsService {
  last?: DnsSnapshot;
  update(snapshot: DnsSnapshot): void {
    this.last = snapshot;
  }
}
