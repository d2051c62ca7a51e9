/**
 * Why the engine refused a frame from the guest. Every frame the guest sends ends in exactly one
 * outcome: forwarded, an ARP reply, a DHCP message handled, or one of these. The stats file lists
 * all of them, zeros included, so a reader never has to guess whether a key is missing or zero.
 */
export const DROP_REASONS = [
  /** 802.1Q / 802.1ad tagged: the VM's NIC is untagged, a tag means the guest is probing. */
  'vlan',
  /** Longer than MAX_FRAME (or a length prefix announcing that much). */
  'oversize',
  /** A header or a length field runs past the end of the frame. */
  'truncated',
  /** Structurally wrong: bad version, impossible lengths, multicast source MAC, trailing bytes. */
  'bad_frame',
  /** An ethertype that is neither IPv4, ARP nor IPv6 (802.3 length fields included). */
  'ethertype',
  /** Unicast to a MAC that is not the gateway's. */
  'not_for_us',
  /** ARP that is not a request for the gateway's address (replies, gratuitous, other targets). */
  'arp_ignored',
  'ipv6',
  'ip_options',
  'fragment',
  /** IPv4 header checksum, or a non-zero UDP checksum, does not verify. */
  'bad_checksum',
  /** An IPv4 source other than the address the guest was leased (0.0.0.0 only for DHCP). */
  'bad_source',
  'tcp',
  'icmp',
  /** Any other IPv4 protocol (IGMP, GRE, 6in4, ...). */
  'ip_proto',
  /** UDP to an ip:port that is not on the allowlist. */
  'udp_not_allowed',
  /** To the DHCP server's port but not a DHCP message it can read. */
  'bad_dhcp',
  /** Allowlisted, but the VM already has as many flows open as it may. */
  'flow_limit',
  /** Allowlisted, but the host socket for the flow could not be made (EMFILE, ...). */
  'send_error',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];
