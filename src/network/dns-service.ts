import type { DnsSnapshot } from './dns/dns-snapshot.js';
import type { EgressLearn } from './dns/dns-server.js';

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
   * Answers at 127.0.0.11:53 inside the container's namespace itself (sockets made there).
   * False when this service cannot, and the caller redirects to {@link listenerFor} instead.
   */
  serveIn?(containerId: string, netnsPath: string): Promise<boolean>;
  /** Closes the container's own sockets (they hold its namespace alive); no-op if it has none. */
  stopServing?(containerId: string): Promise<void>;
  /**
   * The listener serving a network whose gateway is `gateway` (made on first use), or undefined
   * when there is no server: then containers' resolv.conf still says 127.0.0.11 but nothing answers.
   */
  listenerFor?(networkId: string, gateway: string): Promise<DnsListener | undefined>;
  /**
   * The port every gateway listener tries to share (the firewall opens it on gateways); null
   * when nothing listens on gateways, so nothing is opened.
   */
  readonly port?: number | null;
  /** Where upstream answers for deny networks' names are learnt before containers get them. */
  setEgressLearner?(learn: EgressLearn | undefined): void;
  close?(): Promise<void>;
}

/** Until the DNS server is wired in: accepts snapshots, answers nothing. */
export class NoDnsService implements DnsService {
  last?: DnsSnapshot;
  update(snapshot: DnsSnapshot): void {
    this.last = snapshot;
  }
}
