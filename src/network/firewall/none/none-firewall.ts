import type { Firewall, FirewallState } from '../firewall.js';

/**
 * The `none` firewall: programs nothing. For hosts where something else owns the packet filter,
 * and for tests of the layers above. Published ports, masquerade and isolation then do not work
 * unless the operator provides them.
 */
export class NoneFirewall implements Firewall {
  readonly name = 'none';

  async apply(_state: FirewallState): Promise<void> {}

  async teardown(): Promise<void> {}
}
