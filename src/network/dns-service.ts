import type { DnsSnapshot } from './dns/dns-snapshot.js';

/**
 * The seam to the embedded DNS server (127.0.0.11 in containers on user-defined networks). The
 * NetworkManager calls {@link DnsService.update} with a complete, immutable snapshot after every
 * change to networks or endpoints; the server swaps it in whole.
 */
export interface DnsService {
  update(snapshot: DnsSnapshot): void | Promise<void>;
}

/** Until the DNS server is wired in: accepts snapshots, answers nothing. */
export class NoDnsService implements DnsService {
  last?: DnsSnapshot;
  update(snapshot: DnsSnapshot): void {
    this.last = snapshot;
  }
}
