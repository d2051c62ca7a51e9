import type { IpamPool } from './ipam/ipam.js';
import type { PublishedPort } from './ports/port-spec.js';

/** One entry of `IPAM.Config` as inspect shows it. */
export interface IpamConfigView {
  Subnet: string;
  IPRange?: string;
  Gateway?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

/** The stored network: Docker's inspect document plus what only the daemon needs. */
export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: string;
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfigView[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** Daemon-only: the pools IPAM chose. */
  pools: IpamPool[];
  /** Daemon-only: `bridge`, `host`, `none`. */
  predefined: boolean;
}

/** `EndpointSettings` as a client sends it (create's EndpointsConfig, connect's EndpointConfig). */
export interface EndpointRequest {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
  GwPriority?: number;
}

/** A container's configured membership of one network (kept while it is stopped). */
export interface Attachment {
  containerId: string;
  networkId: string;
  /** The name at attachment time, for messages when the network was removed since. */
  networkName: string;
  seq: number;
  config: EndpointRequest;
}

/** A live endpoint of a running container. */
export interface EndpointRecord {
  id: string;
  networkId: string;
  containerId: string;
  /** `eth0`…; '' for drivers without interfaces (`null`). */
  ifname: string;
  mac: string;
  ipv4: string;
  ipv4Prefix: number;
  ipv6: string;
  ipv6Prefix: number;
  gateway4: string;
  gateway6: string;
  aliases: string[];
  dnsNames: string[];
  gwPriority: number;
  /** The default routes this endpoint carries now (gateway-priority winner). */
  activeGateways: string[];
  /** Host ports published to this endpoint (`-p`), reserved while the container runs. */
  published?: PublishedPort[];
}

/** The inspect view: the record without daemon-only fields. */
export function networkView(n: NetworkRecord, containers: Record<string, unknown>): Record<string, unknown> {
  const { pools: _p, predefined: _d, ...doc } = n;
  return { ...doc, Containers: containers };
}
