import type { Firewall, FirewallState } from './firewall/firewall.js';

/** A firewall that keeps no rules: used until the nftables firewall is wired in, and in tests. */
export class NoFirewall implements Firewall {
  readonly name = 'none';
  last?: FirewallState;
  async apply(state: FirewallState): Promise<void> {
    this.last = state;
  }
  async teardown(): Promise<void> {}
}
